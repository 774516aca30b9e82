#!/usr/bin/env bash
# cpu_server_overhead.sh: what the HTTP server costs on the CPU (issue 9). The same 32 greedy requests (demo
# model, base only, every request runs to max_tokens) go through `loraserve serve` (serving_bench.py, all 32
# at once, streaming) and through the engine in-process (offline_bench, `generate`-style offline batching),
# in alternating rounds so both see the same machine; prints each round and the median ratio.
#
#   [CLIENT_NICE=19] [SERVE_ARGS="--io-threads 1"] bash bench/cpu_server_overhead.sh [ROUNDS] [OUTPUT_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wait-for-server.sh
ROUNDS=${1:-5}
OUT_TOKENS=${2:-128}
BIN=${BIN:-build/app/loraserve}
OFFLINE=${OFFLINE:-build/bench/offline_bench}
PY=${PY:-.venv/bin/python}
MODEL=models/demo/base
PORT=${PORT:-18577}
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BIN" serve --model "$MODEL" --port "$PORT" --max-num-seqs 32 ${SERVE_ARGS:-} >"$WORK/server.log" 2>&1 &
SERVER=$!
wait_for_server "$PORT" "$SERVER" "$WORK/server.log"

LOAD=(${CLIENT_NICE:+nice -n "$CLIENT_NICE"} "$PY" bench/serving_bench.py --base-url "http://127.0.0.1:$PORT" --model "$MODEL" --num-prompts 32
      --max-concurrency 32 --request-rate inf --prompt-words 16 64 --output-len "$OUT_TOKENS" "$OUT_TOKENS"
      --ignore-eos --seed 7)
"${LOAD[@]}" --dump-requests "$WORK/requests.json" --result-file "$WORK/warmup.json" >/dev/null

for r in $(seq "$ROUNDS"); do
  "${LOAD[@]}" --requests "$WORK/requests.json" --result-file "$WORK/server_$r.json" >/dev/null
  "$OFFLINE" --model "$MODEL" --requests "$WORK/requests.json" --ignore-eos --max-num-seqs 32 \
    >"$WORK/offline_$r.json" 2>/dev/null
done

"$PY" - "$WORK" "$ROUNDS" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = []
for r in range(1, rounds + 1):
    s = json.load(open(f"{work}/server_{r}.json"))
    o = json.load(open(f"{work}/offline_{r}.json"))
    assert s["completed"] == o["completed"] == 32, (s["completed"], o["completed"])
    assert s["total_output_tokens"] == o["total_output_tokens"], "both ran every request to max_tokens"
    rows.append((s["output_throughput"], o["output_throughput"]))
    print(f"round {r}: server {rows[-1][0]:8.1f} tok/s   offline {rows[-1][1]:8.1f} tok/s   "
          f"ratio {rows[-1][0] / rows[-1][1]:.3f}")
srv = statistics.median(x for x, _ in rows)
off = statistics.median(y for _, y in rows)
print(f"median: server {srv:.1f} tok/s, offline {off:.1f} tok/s, server / offline {srv / off:.3f}; "
      f"median of round ratios {statistics.median(x / y for x, y in rows):.3f}")
EOF
