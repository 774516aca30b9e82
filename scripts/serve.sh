#!/usr/bin/env bash
# serve.sh BINARY MODEL_DIR: the main job on the default model. The HTTP server is a later issue; until it lands
# this runs `loraserve generate` on the model, once for the base and once for each of its adapters, so a
# newcomer sees one base model serving several adapters. Uses models/demo when present, else the tiny oracle
# model shipped in tests/data (random weights: its output is noise, but every part of the engine runs).
set -euo pipefail
bin=$1
model=${2:-models/demo/base}
if [[ ! -f $model/config.json ]]; then
  echo "serve: $model not found; using the tiny oracle model tests/data/oracle/llama/base (random weights)"
  model=tests/data/oracle/llama/base
fi
adapters_dir=$(dirname "$model")/adapters
prompt_tokens=1,366,95,138,5
run() {
  echo "\$ loraserve generate --model $model $* --tokens $prompt_tokens --max-new-tokens 16"
  "$bin" generate --model "$model" "$@" --tokens "$prompt_tokens" --max-new-tokens 16
}
run
if [[ -d $adapters_dir ]]; then
  for adapter in "$adapters_dir"/*/; do
    run --adapter "${adapter%/}"
  done
fi
