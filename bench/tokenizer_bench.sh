#!/usr/bin/env bash
# tokenizer_bench.sh: encode MB/s on one thread, ours (bench/tokenizer_bench) beside Hugging Face's Rust
# `tokenizers` (PyPI, RAYON_NUM_THREADS=1), on the same generated corpus in the same run, per line and per file,
# for the Llama-3, Qwen3 and Llama-2 tokenizers. Usage: bench/tokenizer_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-3}
bench_bin=$build/bench/tokenizer_bench
py=.venv/bin/python
[[ -x $bench_bin ]] || cmake --build "$build" --target tokenizer_bench >/dev/null
[[ -x $py ]] || bash scripts/setup-venv.sh
corpus=$build/tokenizer_bench_corpus
"$py" tests/tokenizer/make_corpus.py "$corpus" >/dev/null
files=("$corpus"/*.txt)
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
printf '%-8s %-6s %12s %12s %8s\n' tokenizer mode "ours MB/s" "HF MB/s" ratio
for name in llama3 qwen3 llama2; do
  tok=../shared/tokenizers/$name/tokenizer.json
  [[ -f $tok ]] || { echo "skip $name: $tok not found"; continue; }
  for mode in lines file; do
    ours=$("$bench_bin" --tokenizer "$tok" --mode "$mode" --seconds "$seconds" "${files[@]}" | sed 's/.*MB\/s=//')
    theirs=$("$py" bench/tokenizer_bench_hf.py --tokenizer "$tok" --mode "$mode" --seconds "$seconds" "${files[@]}" |
      sed 's/.*MB\/s=//')
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2fx", a / b }')
    printf '%-8s %-6s %12s %12s %8s\n' "$name" "$mode" "$ours" "$theirs" "$ratio"
  done
done
echo "corpus: $(cat "${files[@]}" | wc -c) bytes in ${#files[@]} files; one thread each; goal: ours >= 1.5x HF"
