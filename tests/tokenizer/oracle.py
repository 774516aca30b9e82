#!/usr/bin/env python3
"""oracle.py: expected outputs of Hugging Face `tokenizers` for the C++ tokenizer tests.

Usage: oracle.py SHARED_TOKENIZERS_DIR TEST_DATA_DIR OUT_DIR
Writes OUT_DIR/corpus/*.txt (make_corpus.py), OUT_DIR/<name>.tokenizer.json for every tokenizer under test
(the real files plus variants built from them that exercise the other normalizers, pre-tokenizers,
post-processors, decoders and added-token flags), OUT_DIR/<name>.<corpus file>.jsonl with, for the whole file
(first line) and then for every line (split on "\\n"): [ids without special tokens, ids with special tokens,
decode(ids with special tokens), decode(same, skip_special_tokens=True), byte offsets of the ids with special
tokens], and OUT_DIR/manifest.json.
"""
import copy
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def variants(real):
    """Tokenizer configs derived from the real files, each exercising components the real ones lack."""
    out = {}
    l2, q3 = real.get("llama2"), real.get("qwen3")
    if l2:
        v = copy.deepcopy(l2)  # Mistral v0.3 style: Metaspace pre-tokenizer, prepend_scheme "first"
        v["normalizer"] = None
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
        v["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Metaspace",
                        "replacement": "▁", "prepend_scheme": "first", "split": False}]}
        out["llama2_metaspace_first"] = v

        v = copy.deepcopy(l2)  # Metaspace always + split, added tokens with lstrip/rstrip/single_word/normalized
        v["normalizer"] = None
        v["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
        v["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Metaspace",
                        "replacement": "▁", "prepend_scheme": "always", "split": True}, {"type": "Fuse"}]}
        for t in v["added_tokens"]:
            if t["content"] == "</s>":
                t["lstrip"] = t["rstrip"] = True
        v["added_tokens"] += [
            {"id": 32000, "content": "<|im_start|>", "single_word": False, "lstrip": True, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 32001, "content": "word", "single_word": True, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False},
            {"id": 32002, "content": "▁is", "single_word": False, "lstrip": False, "rstrip": True,
             "normalized": True, "special": False},
            {"id": 32003, "content": "I'm", "single_word": True, "lstrip": True, "rstrip": True,
             "normalized": True, "special": True},
        ]
        v["post_processor"] = {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                                  "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
        out["llama2_metaspace_added"] = v

        v = copy.deepcopy(l2)  # normalizer chain, Digits and Punctuation pre-tokenizers, unk without fuse
        v["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, {"type": "Punctuation", "behavior": "Contiguous"}]}
        v["model"]["byte_fallback"] = False
        v["model"]["fuse_unk"] = False
        v["added_tokens"] += [{"id": 32000, "content": "Hello", "single_word": False, "lstrip": False,
                               "rstrip": False, "normalized": True, "special": True}]
        out["llama2_normalizers"] = v

        v = copy.deepcopy(l2)  # NFD, unk with fuse_unk, Whitespace pre-tokenizer, BERT-style post-processor
        v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}
        v["pre_tokenizer"] = {"type": "Whitespace"}
        v["model"]["byte_fallback"] = False
        v["post_processor"] = {"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]}
        v["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"},
                        "content": " "}, {"type": "Strip", "content": " ", "start": 2, "stop": 0}]}
        out["llama2_whitespace_unk"] = v
    if q3:
        v = copy.deepcopy(q3)  # GPT-2 style: ByteLevel with its own regex and a prefix space, NFKD
        v["normalizer"] = {"type": "NFKD"}
        v["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
        v["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|im_end|>", 151645],
                               "cls": ["<|im_start|>", 151644], "trim_offsets": True, "add_prefix_space": True}
        out["qwen3_gpt2"] = v

        v = copy.deepcopy(q3)  # Split behaviors and invert, WhitespaceSplit, Lowercase
        v["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
        v["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "\n"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{N}+"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[\\p{L}\\p{M}]+"}, "behavior": "Contiguous", "invert": True},
            {"type": "Split", "pattern": {"Regex": " ?[^\\s\\p{L}\\p{N}]+"}, "behavior": "Isolated",
             "invert": False},
            {"type": "Split", "pattern": {"String": "\t"}, "behavior": "Removed", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
        v["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [151644], "tokens": ["<|im_start|>"]},
                                "<|im_end|>": {"id": "<|im_end|>", "ids": [151645], "tokens": ["<|im_end|>"]}}}]}
        out["qwen3_splits"] = v
    return out


def byte_offsets(text, offsets):
    """`tokenizers` reports character offsets to Python; the server (like the Rust API) uses bytes."""
    at = [0]
    for ch in text:
        at.append(at[-1] + len(ch.encode("utf-8", "surrogatepass")))
    return [[at[s], at[e]] for s, e in offsets]


def run_file(tok, text):
    """Records for the whole text and for each line."""
    items = [text] + text.split("\n")
    plain = [e.ids for e in tok.encode_batch(items, add_special_tokens=False)]
    special_enc = tok.encode_batch(items, add_special_tokens=True)
    special = [e.ids for e in special_enc]
    offsets = [byte_offsets(t, e.offsets) for t, e in zip(items, special_enc)]
    dec = tok.decode_batch(special, skip_special_tokens=False)
    dec_skip = tok.decode_batch(special, skip_special_tokens=True)
    return [[p, s, d, k, o] for p, s, d, k, o in zip(plain, special, dec, dec_skip, offsets)]


def main():
    shared, data_dir, out_dir = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    corpus_dir = os.path.join(out_dir, "corpus")
    subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), corpus_dir], check=True)
    corpus = sorted(f for f in os.listdir(corpus_dir) if f.endswith(".txt"))

    sources = {}
    for name in ("llama3", "qwen3", "llama2"):
        path = os.path.join(shared, name, "tokenizer.json")
        if os.path.isfile(path):
            sources[name] = path
    local = os.path.join(data_dir, "tokenizers")
    for name in sorted(os.listdir(local)) if os.path.isdir(local) else []:
        path = os.path.join(local, name, "tokenizer.json")
        if os.path.isfile(path):
            sources[name] = path
    if not {"llama3", "qwen3", "llama2"} <= set(sources):
        sys.exit(f"oracle: the real tokenizers are missing under {shared}")
    real = {name: load(path) for name, path in sources.items()}
    configs = dict(real)
    configs.update(variants(real))

    manifest = []
    for name, config in configs.items():
        tok_path = os.path.join(out_dir, name + ".tokenizer.json")
        with open(tok_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False)
        tok = Tokenizer.from_file(tok_path)
        entry = {"name": name, "tokenizer": tok_path, "files": []}
        # The variants only exist to exercise components: the multilingual and edge-case files suffice.
        for cf in corpus if name in real else [c for c in corpus if c in ("multilingual.txt", "edge.txt", "random.txt")]:
            with open(os.path.join(corpus_dir, cf), encoding="utf-8", newline="") as f:
                text = f.read()
            expected = os.path.join(out_dir, f"{name}.{cf}.jsonl")
            with open(expected, "w", encoding="utf-8") as f:
                for record in run_file(tok, text):
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            entry["files"].append({"corpus": os.path.join(corpus_dir, cf), "expected": expected})
        manifest.append(entry)
        print(f"oracle: {name} done", flush=True)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
