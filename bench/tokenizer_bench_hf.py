#!/usr/bin/env python3
"""tokenizer_bench_hf.py: encode throughput of Hugging Face `tokenizers` on one thread, measured the same way as
bench/tokenizer_bench.cpp (plain encode per line or per file, add_special_tokens off, one warm-up pass).
Run with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false.
Usage: tokenizer_bench_hf.py --tokenizer FILE [--mode lines|file] [--seconds S] CORPUS_FILE..."""
import argparse
import time

from tokenizers import Tokenizer

p = argparse.ArgumentParser()
p.add_argument("--tokenizer", required=True)
p.add_argument("--mode", default="lines", choices=["lines", "file"])
p.add_argument("--seconds", type=float, default=3.0)
p.add_argument("files", nargs="+")
a = p.parse_args()
tok = Tokenizer.from_file(a.tokenizer)
texts = []
for f in a.files:
    with open(f, encoding="utf-8", newline="") as fh:
        text = fh.read()
    texts += [text] if a.mode == "file" else text.split("\n")
nbytes = sum(len(t.encode()) for t in texts)
tokens = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
passes, start = 0, time.perf_counter()
while True:
    for t in texts:
        tok.encode(t, add_special_tokens=False)
    passes += 1
    seconds = time.perf_counter() - start
    if seconds >= a.seconds:
        break
print(f"hf-tokenizers {a.tokenizer} {a.mode} bytes={nbytes} tokens={tokens} passes={passes} "
      f"seconds={seconds:.3f} MB/s={nbytes * passes / seconds / 1e6:.2f}")
