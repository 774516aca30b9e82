#!/usr/bin/env bash
# gpu-serve-bench.sh: the server's overhead on the GPU machine, measured in one run: `loraserve serve` on the
# Llama-3-8B-shaped dummy model (random bf16 weights, the Llama 3 tokenizer), 64 concurrent streaming requests
# (base model, ~900-token prompts, 256 tokens each with ignore_eos) from bench/serving_bench.py, the server's
# mean decode step from its /metrics (loraserve:decode_step_seconds / loraserve:decode_steps, decode-only steps
# at 64 sequences), next to bench/engine_bench's graph-replay decode step at batch 64, context 1024 on the same
# card (the engine_bench beside BINARY's build, or $ENGINE_BENCH). Logs under $OUT (or /tmp/gpu-serve-bench).
# Usage: scripts/gpu-serve-bench.sh BINARY TOKENIZER_DIR
set -uo pipefail
source "$(dirname "$0")/wait-for-server.sh"
bin=${1:?loraserve binary}
engine=${ENGINE_BENCH:-$(dirname "$bin")/../bench/engine_bench}
tok=${2:?tokenizer directory (tokenizer.json, tokenizer_config.json)}
logs=${OUT:-/tmp/gpu-serve-bench}
mkdir -p "$logs"
port=8093
model=tests/data/configs/llama3-8b
"$bin" serve --model "$model" --load-format dummy --tokenizer "$tok" --device cuda --port $port \
  --max-num-seqs 64 --max-model-len 1280 --served-model-name llama3-8b-dummy > "$logs/server.log" 2>&1 &
server=$!
wait_for_server $port $server "$logs/server.log"
scrape() { python3 bench/prom_metrics.py snapshot "http://127.0.0.1:$port" "$1" loraserve:decode_step ; }
bench() {
  python3 bench/serving_bench.py --base-url "http://127.0.0.1:$port" --model llama3-8b-dummy --num-prompts 64 \
    --request-rate inf --prompt-words 900 900 --output-len 256 256 --ignore-eos --result-file "$1"
}
bench "$logs/warmup.json" > "$logs/warmup.txt" 2>&1  # graphs, GEMM plans
scrape "$logs/metrics_before.txt"
bench "$logs/serving.json" | tee "$logs/serving.txt"
scrape "$logs/metrics_after.txt"
kill -TERM $server
wait $server
"$engine" --model "$model" --load-format dummy --device cuda --batches 64 --context 1024 \
  --replays 100 --prefill 128 --no-breakdown > "$logs/bench_engine.txt" 2>&1
python3 - "$logs" <<'PY'
import json, re, sys
sys.path.insert(0, "bench")
from prom_metrics import diff, read
logs = sys.argv[1]
d = diff(read(f"{logs}/metrics_before.txt"), read(f"{logs}/metrics_after.txt"))
steps, secs = d["loraserve:decode_steps_total"], d["loraserve:decode_step_seconds_total"]
server_ms = 1e3 * secs / steps
engine_ms = None
for line in open(f"{logs}/bench_engine.txt"):
    m = re.match(r"\s+64\s+base\s+([0-9.]+)\s", line)  # batch, adapters, step ms
    if m:
        engine_ms = float(m.group(1))
        break
s = json.load(open(f"{logs}/serving.json"))
print(f"server: {steps:.0f} decode steps, mean {server_ms:.3f} ms; output {s['output_throughput']:.0f} tok/s, "
      f"TPOT p50 {s['p50_tpot_ms']:.2f} ms, ITL p50 {s['p50_itl_ms']:.2f} ms")
if engine_ms:
    print(f"engine_bench batch 64, context 1024: {engine_ms:.3f} ms; "
          f"server / engine_bench = {server_ms / engine_ms:.3f}")
PY
