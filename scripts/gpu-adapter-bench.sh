#!/usr/bin/env bash
# gpu-adapter-bench.sh: issue 11's serving benchmark. `loraserve serve` on the Llama-3-8B-shaped dummy model
# (random bf16 weights, the Llama 3 tokenizer) with an --adapter-dir of N generated rank-16 PEFT adapters
# (q_proj and v_proj, PEFT's default target modules for Llama; float16 files written by
# tools/adapters/make_adapters.py in parallel), then bench/serving_bench.py twice with the same prompts, Poisson
# arrivals and power-law popularity: once over 5 of the adapters, once over all N. Prints both results and the
# server's adapter counters (loads, slot loads, evictions, load latency, and the slot copies' wait exposed to
# their requests: mean over the requests that waited, and the longest) after each run. Logs under $OUT (or
# /tmp/gpu-adapter-bench).
#
# Usage: scripts/gpu-adapter-bench.sh BINARY TOKENIZER_DIR [N] [RATE] [PROMPTS]
# Dry run on the CPU with the demo model: DEMO=1 scripts/gpu-adapter-bench.sh build/app/loraserve - 40 4 24
set -uo pipefail
source "$(dirname "$0")/wait-for-server.sh"
bin=${1:?loraserve binary}
tok=${2:?tokenizer directory}
count=${3:-1000}
rate=${4:-100}
prompts=${5:-600}
logs=${OUT:-/tmp/gpu-adapter-bench}
adapters=${ADAPTERS:-/tmp/gpu-adapter-bench-adapters}
py=${PY:-python3}
port=8094
mkdir -p "$logs" "$adapters"
if [ -n "${DEMO:-}" ]; then
  model=models/demo/base
  serve_args=(--model "$model" --max-num-seqs 16 --max-loras 8 --max-cpu-loras "$count")
  words=(16 32); out_len=(16 16)
else
  model=tests/data/configs/llama3-8b
  serve_args=(--model "$model" --load-format dummy --tokenizer "$tok" --device cuda --max-num-seqs 64
              --max-model-len 1280 --max-loras 64 --max-lora-rank 16 --max-cpu-loras "$count")
  words=(150 250); out_len=(128 128)
fi

# The adapters: `jobs` writers in parallel, distinct seeds, names pJJ_NNNN.
jobs=$(( $(nproc) < 16 ? $(nproc) : 16 ))
per=$(( (count + jobs - 1) / jobs ))
t0=$(date +%s%N)
# (kept from an earlier run into the same ADAPTERS directory when there are enough)
[ "$(ls "$adapters" | wc -l)" -ge "$count" ] && jobs=0
for j in $(seq 0 $((jobs - 1))); do
  "$py" tools/adapters/make_adapters.py --base "$model" --out "$adapters" --count "$per" --prefix "p$(printf %02d "$j")_" \
    --ranks 16 --modules q_proj,v_proj --dtype float16 --seed $((j * 100000)) > /dev/null &
done
wait
names=$(ls "$adapters" | sort | head -n "$count")
echo "adapters: $(echo "$names" | wc -l) written in $(( ($(date +%s%N) - t0) / 1000000 )) ms, $(du -sh "$adapters" | cut -f1)"

"$bin" serve "${serve_args[@]}" --adapter-dir "$adapters" --port $port --served-model-name base \
  > "$logs/server.log" 2>&1 &
server=$!
wait_for_server $port $server "$logs/server.log"
counters() {  # per-adapter series are left out (1,000 adapters' lines)
  "$py" bench/prom_metrics.py snapshot "http://127.0.0.1:$port" "$1.all" loraserve:decode_steps \
    loraserve:adapter_{loads,load_failures,evictions,slot_load,slot_wait_max} \
    loraserve:adapter_{load,slot_wait}_seconds_{sum,count}
  grep -v '{adapter=' "$1.all" > "$1" && rm "$1.all"
}
bench() {  # $1: adapters (comma list), $2: result name, $3: requests
  "$py" bench/serving_bench.py --base-url "http://127.0.0.1:$port" --model base --adapters "$1" --base-share-weight 0 \
    --num-prompts "$3" --request-rate "$rate" --popularity power-law --prompt-words "${words[@]}" \
    --output-len "${out_len[@]}" --ignore-eos --seed 11 --result-file "$logs/$2.json" > "$logs/$2.txt" 2>&1
}
five=$(echo "$names" | head -n 5 | paste -sd,)
all=$(echo "$names" | paste -sd,)
bench "$five" warmup $((prompts / 4))  # graphs, GEMM plans, the five adapters' first loads
for run in five all; do
  counters "$logs/counters_${run}_before.txt"
  if [ $run = five ]; then bench "$five" $run "$prompts"; else bench "$all" $run "$prompts"; fi
  counters "$logs/counters_${run}_after.txt"
done
kill -TERM $server
wait $server
"$py" - "$logs" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from prom_metrics import diff, read
logs = sys.argv[1]
res = {}
for run in ("five", "all"):
    r = json.load(open(f"{logs}/{run}.json"))
    b, a = read(f"{logs}/counters_{run}_before.txt"), read(f"{logs}/counters_{run}_after.txt")
    d = {k: v for k, v in diff(b, a).items() if not k.endswith("_max_seconds")}
    res[run] = r
    loads = d.get("loraserve:adapter_load_seconds_count", 0.0)
    mean_load = 1e3 * d.get("loraserve:adapter_load_seconds_sum", 0.0) / loads if loads else 0.0
    landed = d.get("loraserve:adapter_slot_loads_done_total", 0.0)
    slot_ms = 1e3 * d.get("loraserve:adapter_slot_load_seconds_total", 0.0) / landed if landed else 0.0
    waits = d.get("loraserve:adapter_slot_wait_seconds_count", 0.0)
    wait_ms = 1e3 * d.get("loraserve:adapter_slot_wait_seconds_sum", 0.0) / waits if waits else 0.0
    print(f"{run:>4}: {r['completed']} done, output {r['output_throughput']:.0f} tok/s, TTFT p50 {r['median_ttft_ms']:.1f} "
          f"p99 {r['p99_ttft_ms']:.1f} ms, TPOT p50 {r['median_tpot_ms']:.2f} ms, ITL p99 {r['p99_itl_ms']:.1f} ms; "
          + ", ".join(f"{k.split(':')[1]} {v:g}" for k, v in sorted(d.items())
                      if not k.endswith(("_sum", "_count", "_seconds_total")))
          + f"; host loads {loads:g}, mean {mean_load:.1f} ms; device slot loads landed {landed:g}, start to "
          f"ready mean {slot_ms:.2f} ms, longest so far {1e3 * a.get('loraserve:adapter_slot_load_max_seconds', 0):.2f} ms; "
          f"exposed to their requests (next in line with a seat, waiting for the copy alone): {waits:g} of "
          f"{r['completed']} requests waited, mean {wait_ms:.2f} ms, longest so far "
          f"{1e3 * a.get('loraserve:adapter_slot_wait_max_seconds', 0):.2f} ms; per slot load landed "
          f"{1e3 * d.get('loraserve:adapter_slot_wait_seconds_sum', 0.0) / landed if landed else 0.0:.2f} ms")
print(f"output throughput, all / five: {res['all']['output_throughput'] / res['five']['output_throughput']:.3f}")
PY
