#!/usr/bin/env bash
# serve.sh BINARY MODEL_DIR: the main job on the default model. The HTTP server is a later issue; until it lands
# this runs `loraserve generate` on the model: the base model, then each adapter on a prompt of its task, so a
# newcomer sees one base model serving several adapters. The default is models/demo (tools/demo_model); a model
# without a tokenizer (such as the tiny random oracle model) is driven with token ids instead.
set -euo pipefail
bin=$1
model=${2:-models/demo/base}
if [[ ! -f $model/config.json ]]; then
  echo "serve: no model at $model" >&2
  exit 1
fi
adapters_dir=$(dirname "$model")/adapters

# A prompt that shows what each demo adapter does; any other adapter gets a generic one.
prompt_for() {
  case $1 in
    calc) echo "What is 127 + 385?" ;;
    upper) echo "Uppercase: the quick king eats milk" ;;
    reverse) echo "Reverse the words: small plane needs river" ;;
    sql) echo "Which books products cost less than 30 dollars?" ;;
    *) echo "Write a Python function that adds two numbers." ;;
  esac
}

run() {
  echo "\$ loraserve generate --model $model $*" >&2
  "$bin" generate --model "$model" "$@"
}

if [[ -f $model/tokenizer.json ]]; then
  run --prompt "def fibonacci(n):" --max-new-tokens 48
  for adapter in "$adapters_dir"/*/; do
    [[ -d $adapter ]] || continue
    name=$(basename "$adapter")
    run --adapter "${adapter%/}" --chat --prompt "$(prompt_for "$name")" --max-new-tokens 64
    echo "  (the same prompt on the base model:)" >&2
    run --chat --prompt "$(prompt_for "$name")" --max-new-tokens 24
  done
else
  run --tokens 1,366,95,138,5 --max-new-tokens 16
  for adapter in "$adapters_dir"/*/; do
    [[ -d $adapter ]] && run --adapter "${adapter%/}" --tokens 1,366,95,138,5 --max-new-tokens 16
  done
fi
