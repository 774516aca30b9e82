#!/usr/bin/env bash
# serve.sh BINARY MODEL_DIR: the main job, `make serve`: the HTTP server on a model with every adapter found
# beside it (MODEL_DIR/../adapters/NAME), on the GPU when this build has the CUDA backend and a GPU is there,
# else on the CPU. Before the server starts it prints, for each adapter, a curl line that asks it a question of
# its task (the demo model's adapters: calc, reverse, sql, upper) so a newcomer can see one base model answer
# as several specialists. PORT and HOST pick where it listens (default 0.0.0.0:8080), DEVICE the backend.
set -euo pipefail
bin=$1
model=${2:-models/demo/base}
port=${PORT:-8080}
host=${HOST:-0.0.0.0}
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

specs=()
names=()
for adapter in "$adapters_dir"/*/; do
  [[ -f $adapter/adapter_config.json ]] || continue
  name=$(basename "$adapter")
  names+=("$name")
  specs+=("$name=${adapter%/}")
done

# The GPU when one answers and this build has the CUDA backend (CMake found nvcc); DEVICE overrides.
device=${DEVICE:-cpu}
if [[ -z ${DEVICE:-} ]] && command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 &&
  grep -q "^LORASERVE_CUDA:BOOL=ON" "$(dirname "$bin")/../CMakeCache.txt" 2> /dev/null; then
  device=cuda
fi

url="http://localhost:$port"
echo "serve: starting loraserve on $model ($device) with ${#names[@]} adapter(s); try, once it says it is listening:"
echo "  curl -s $url/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"def fibonacci(n):\"}], \"max_tokens\": 48}'"
for name in "${names[@]}"; do
  echo "  curl -s $url/v1/chat/completions -H 'Content-Type: application/json' -d '{\"model\": \"$name\", \"messages\": [{\"role\": \"user\", \"content\": \"$(prompt_for "$name")\"}]}'"
done
echo "  the playground and adapter dashboard: $url/ ; the API: $url/openapi.json ; metrics: $url/metrics"
args=(serve --model "$model" --host "$host" --port "$port" --device "$device")
if ((${#specs[@]} > 0)); then
  args+=(--lora-adapters "$(IFS=,; echo "${specs[*]}")" --max-loras "${#specs[@]}")
fi
exec "$bin" "${args[@]}"
