#!/usr/bin/env bash
# adapter_scaling.sh: output tokens/s when the requests spread over 5 adapters against 500 (issue 10's "many
# adapters" cost: slot loads, host-cache misses, mixed-adapter steps). Generates 500 seeded rank-16 PEFT adapters
# on every projection for the demo model (tools/adapters/make_adapters.py), writes one request file per case
# (same prompts and lengths; adapter i % N for request i, so every adapter of the 500-case is used), and runs each
# through the engine in-process (offline_bench) with --adapter-dir, --max-loras and --max-cpu-loras as given.
#
#   bash bench/adapter_scaling.sh [REQUESTS] [MAX_LORAS] [MAX_CPU_LORAS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-512}
MAX_LORAS=${2:-32}
MAX_CPU_LORAS=${3:-64}
ROUNDS=${4:-3}
OFFLINE=${OFFLINE:-build/bench/offline_bench}
PY=${PY:-.venv/bin/python}
MODEL=models/demo/base
WORK=${WORK:-$(mktemp -d)}
[ -d "$WORK/adapters" ] || "$PY" tools/adapters/make_adapters.py --base "$MODEL" --out "$WORK/adapters" --count 500 \
  --ranks 16 --modules all --scale 0.02 --prefix a >/dev/null

"$PY" - "$WORK" "$REQUESTS" <<'EOF'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
words = "the a model adapter request token step batch server engine cache slot".split()
jobs = [(" ".join(rng.choice(words) for _ in range(rng.randint(16, 48))), 64) for _ in range(n)]
for count in (5, 500):
    with open(f"{work}/requests_{count}.json", "w") as f:
        json.dump([{"model": f"a{i % count:04d}", "prompt": p, "max_tokens": t} for i, (p, t) in enumerate(jobs)], f)
EOF

for r in $(seq "$ROUNDS"); do
  for count in 5 500; do
    "$OFFLINE" --model "$MODEL" --adapter-dir "$WORK/adapters" --requests "$WORK/requests_$count.json" --ignore-eos \
      --max-num-seqs 64 --max-loras "$MAX_LORAS" --max-cpu-loras "$MAX_CPU_LORAS" >"$WORK/out_${count}_$r.json"
    "$PY" -c "
import json; d = json.load(open('$WORK/out_${count}_$r.json'))
print(f'round $r, $count adapters: {d[\"output_throughput\"]:7.1f} tok/s, {d[\"steps\"]} steps, '
      f'{d[\"adapter_loads\"]} host loads, {d[\"adapter_slot_loads\"]} slot loads, {d[\"adapter_evictions\"]} evictions')"
  done
done
