#!/usr/bin/env bash
# fuzz-tokenizer.sh: builds the tokenizer libFuzzer target (clang, -fsanitize=fuzzer,address,undefined) in
# build-fuzz/ and runs it for a bounded time from a small seed corpus (tokenizer.json variants and texts).
# Fails on any crash, hang or sanitizer report. Usage: scripts/fuzz-tokenizer.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${2:-build-fuzz}
source scripts/fuzz-lib.sh
fuzz_build "$out" tokenizer_fuzz "libpcre2-8 libutf8proc" src/core/*.cpp src/tokenizer/*.cpp tests/tokenizer/tokenizer_fuzz.cpp

# Seeds: mode byte 0 + a tokenizer.json, mode byte 1 + text.
seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds"
python3 - "$seeds" <<'PY'
import json, sys, os
seeds = sys.argv[1]
base = json.load(open("tests/data/tokenizers/tiny_llama/tokenizer.json", encoding="utf-8"))
def put(name, mode, payload):
    with open(os.path.join(seeds, name), "wb") as f:
        f.write(bytes([mode]) + payload.encode("utf-8"))
put("tiny", 0, json.dumps(base, ensure_ascii=False))
pre = [{"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
       {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
        {"type": "Punctuation", "behavior": "MergedWithNext"}, {"type": "WhitespaceSplit"}]},
       {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{L}+|\\s+(?!\\S)"}, "behavior": "Contiguous", "invert": True},
       {"type": "Whitespace"}, {"type": "BertPreTokenizer"}]
norm = [{"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": False}]},
        {"type": "Replace", "pattern": {"Regex": "a*"}, "content": "\u2581"}, {"type": "Prepend", "prepend": "\u2581"}, {"type": "NFD"}]
dec = [{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 3, "stop": 2}]},
       {"type": "Metaspace", "replacement": "\u2581"}, {"type": "Replace", "pattern": {"Regex": "\u0120+"}, "content": " "}]
for i, p in enumerate(pre):
    v = dict(base); v["pre_tokenizer"] = p; v["normalizer"] = norm[i % len(norm)]; v["decoder"] = dec[i % len(dec)]
    v["added_tokens"] = base["added_tokens"] + [{"id": 600 + i, "content": "ab", "single_word": True, "lstrip": True,
        "rstrip": True, "normalized": bool(i % 2), "special": False}]
    put(f"variant{i}", 0, json.dumps(v, ensure_ascii=False))
texts = ["Hello world! <s>x</s>", "  \t\n\r\n \u00a0\u3000 spaces", "日本語のテキスト 한국어 العربية", "👨‍👩‍👧 e\u0301 \u0130",
         "<|begin_of_text|><|im_start|>user\n<0x41>", "1234567890 !!!??? it's", "\u2581\u2581 \u2581x"]
for i, t in enumerate(texts):
    put(f"text{i}", 1, t)
with open(os.path.join(seeds, "bytes"), "wb") as f:
    f.write(b"\x01\xff\xfe\xc3\x28\xe2\x82\x00 a\xf0\x9f\x98")
PY
fuzz_run "$out" tokenizer_fuzz "$seconds" "$seeds" -timeout=60 -rss_limit_mb=4096 -max_len=4096
