#!/usr/bin/env bash
# fuzz-chat.sh: builds the chat-template libFuzzer target (clang, -fsanitize=fuzzer,address,undefined) in
# build-fuzz-chat/ and runs it for a bounded time from a seed corpus of the real templates and the feature
# snippets in tests/data/chat_templates. Fails on any crash, hang, leak or sanitizer report.
# Usage: scripts/fuzz-chat.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${2:-build-fuzz-chat}
mkdir -p "$out/objs"
cxx=${CXX_FUZZ:-clang++}
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer -Isrc $(pkg-config --cflags libutf8proc))
objs=()
stale=()
for src in src/core/*.cpp src/chat/*.cpp tests/chat/chat_template_fuzz.cpp; do
  obj=$out/objs/$(echo "$src" | tr / _).o
  if [[ ! -f $obj || $src -nt $obj || -n $(find src/core src/chat -name '*.h' -newer "$obj" -print -quit) ]]; then
    stale+=("$src")
  fi
  objs+=("$obj")
done
# Compile what changed, one job per core.
if ((${#stale[@]} > 0)); then
  export out cxx
  export flags_str="${flags[*]}"
  printf '%s\n' "${stale[@]}" | xargs -P "$(nproc)" -I{} bash -c \
    'src={}; "$cxx" $flags_str -c "$src" -o "$out/objs/$(echo "$src" | tr / _).o"'
fi
"$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" $(pkg-config --libs libutf8proc) -o "$out/chat_template_fuzz"

# Seeds: every real template, and every snippet followed by NUL and its variables.
seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds" "$out/corpus"
cp tests/data/chat_templates/*.jinja "$seeds/"
python3 - "$seeds" <<'PY'
import json, os, sys
seeds = sys.argv[1]
for i, s in enumerate(json.load(open("tests/data/chat_templates/snippets.json", encoding="utf-8"))):
    with open(os.path.join(seeds, f"snippet{i}"), "wb") as f:
        f.write(s["source"].encode("utf-8") + b"\0" + json.dumps(s["variables"]).encode("utf-8"))
PY
echo "fuzz-chat: running for ${seconds}s"
"$out/chat_template_fuzz" -artifact_prefix="$out/" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 "$out/corpus" "$seeds" 2>&1 | tail -n 25
