#!/usr/bin/env bash
# fuzz-chat.sh: builds the chat-template libFuzzer target (clang, -fsanitize=fuzzer,address,undefined) in
# build-fuzz-chat/ and runs it for a bounded time from a seed corpus of the real templates and the feature
# snippets in tests/data/chat_templates. Fails on any crash, hang, leak or sanitizer report.
# Usage: scripts/fuzz-chat.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${2:-build-fuzz-chat}
source scripts/fuzz-lib.sh
fuzz_build "$out" chat_template_fuzz libutf8proc src/core/*.cpp src/chat/*.cpp tests/chat/chat_template_fuzz.cpp

# Seeds: every real template, and every snippet followed by NUL and its variables.
seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds"
cp tests/data/chat_templates/*.jinja "$seeds/"
python3 - "$seeds" <<'PY'
import json, os, sys
seeds = sys.argv[1]
for i, s in enumerate(json.load(open("tests/data/chat_templates/snippets.json", encoding="utf-8"))):
    with open(os.path.join(seeds, f"snippet{i}"), "wb") as f:
        f.write(s["source"].encode("utf-8") + b"\0" + json.dumps(s["variables"]).encode("utf-8"))
PY
fuzz_run "$out" chat_template_fuzz "$seconds" "$seeds" -timeout=10 -rss_limit_mb=2048 -max_len=16384
