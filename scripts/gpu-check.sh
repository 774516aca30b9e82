#!/usr/bin/env bash
# gpu-check.sh: everything the GPU machine checks, in one call, from the repository root: the gpu-labelled
# tests (every CUDA op against its CPU twin, GPU oracle parity, decode graphs), the CLI oracle check
# (`loraserve generate --device cuda` reproduces the shared oracle's greedy paths), focused decode-kernel timings
# (attention: tensor-core against CUDA-core kernel; projections: skinny GEMM against cuBLASLt), and
# bench/engine_bench on the Llama-3-8B-shaped dummy model (base-only, one adapter, one adapter per
# sequence), and the transformers+peft peer (bench/peft_peer.py) on the same GPU; unless quick, also each kernel of
# one decode step per batch and mix under Nsight Compute (bench/ncu_steps.py) and bench/lora_stream_probe. Logs go
# under $OUT (or /tmp/gpu-check); a summary table prints last.
# The build is made elsewhere (cmake -DLORASERVE_CUDA=ON) and carried, as BUILD_DIR or as the bundle
# gpu-build.tar.xz that scripts/gpu-pack.sh makes (looked for beside this script, then in carry/).
# Usage: scripts/gpu-check.sh [BUILD_DIR] [quick]   (default build-cuda; quick: no peer, no PDL/tuning variants)
set -uo pipefail
build=${1:-build-cuda}
quick=${2:-}
logs=${OUT:-/tmp/gpu-check}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$logs"
for bundle in "$here/gpu-build.tar.xz" carry/gpu-build.tar.xz; do
  if [ ! -d "$build" ] && [ -f "$bundle" ]; then tar -xJf "$bundle"; fi
done
[ -f "$build/CMakeCache.txt" ] || { echo "gpu-check: no build in $build" >&2; exit 1; }

# CTest files name the build's source tree by absolute path; make that path lead here.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
if [ -n "$src" ] && [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then
  mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
fi
bin="$PWD/$build/app/loraserve"
engine="$PWD/$build/bench/engine_bench"
# cuBLASLt is the one CUDA library linked dynamically: find it if the loader does not.
if ldd "$bin" | grep -q "not found"; then
  lib=$(find / -name 'libcublasLt.so.13*' -not -path '*/proc/*' 2>/dev/null | head -1)
  [ -n "$lib" ] && export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv; ldd "$bin"; } \
  > "$logs/device.txt" 2>&1

echo "== ctest -L gpu"
(cd "$build" && ctest -L gpu -j2 --timeout 240 --output-on-failure) 2>&1 | tee "$logs/ctest.log"
ctest_rc=${PIPESTATUS[0]}

echo "== decode kernel microbenchmarks"
timeout 180 "$build/tests/kernels/cuda_kernels_test" --gtest_also_run_disabled_tests --gtest_filter='*KernelBench*' \
  2>&1 | tee "$logs/kernel_bench.log"
attn_rc=${PIPESTATUS[0]}

echo "== CLI oracle check (loraserve generate --device cuda)"
timeout 150 python3 - "$bin" 2>&1 <<'PY' | tee "$logs/cli_oracle.log"
import json, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
bin_ = sys.argv[1]
jobs = []
for arch in ("llama", "mistral"):
    root = f"tests/data/oracle/{arch}"
    case = json.load(open(f"{root}/case.json"))
    runs = [("base", None, case["base_paths"])] + [(a["name"], f"{root}/adapters/{a['name']}", a["paths"]) for a in case["adapters"]]
    for name, adapter, paths in runs:
        for prompt, path in zip(case["prompts"], paths):
            jobs.append((arch, name, adapter, prompt, path, root))
def run(job):
    arch, name, adapter, prompt, path, root = job
    cmd = [bin_, "generate", "--model", f"{root}/base", "--device", "cuda", "--tokens", ",".join(map(str, prompt)),
           "--max-new-tokens", str(len(path) - len(prompt))] + (["--adapter", adapter] if adapter else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return job, None, p.stderr.strip()
    return job, json.loads(p.stdout)["tokens"], ""
equal = total = failed = 0
with ThreadPoolExecutor(8) as pool:
    for (arch, name, adapter, prompt, path, root), got, err in pool.map(run, jobs):
        total += 1
        want = path[len(prompt):]
        if got is None:
            failed += 1
            print(f"FAIL {arch}/{name} prompt len {len(prompt)}: {err}")
        elif got == want:
            equal += 1
        else:
            k = next(i for i in range(len(want)) if got[i] != want[i])
            print(f"diverges {arch}/{name} prompt len {len(prompt)} at step {k} of {len(want)}")
print(f"CLI oracle: {equal} of {total} greedy paths equal, {failed} failed to run")
sys.exit(1 if failed else 0)
PY
cli_rc=${PIPESTATUS[0]}

echo "== engine_bench"
timeout 300 "$engine" --model tests/data/configs/llama3-8b --load-format dummy --device cuda 2>&1 |
  tee "$logs/bench.log"
bench_rc=${PIPESTATUS[0]}
if [ "$quick" != quick ]; then
echo "== peer: transformers+peft, batch 32, 32 distinct adapters"
peer="$here/peft_peer.py"  # beside the script when gpu-pack.sh put it there, else the repository's
[ -f "$peer" ] || peer="$here/../bench/peft_peer.py"
PYTHONUNBUFFERED=1 timeout 300 python3 "$peer" tests/data/configs/llama3-8b 2>&1 | grep -v Warning | tee "$logs/peer.log"

# Each kernel of one decode step per batch and adapter mix (Nsight Compute, where the machine has it), and the
# LoRA expand's reads of B alone at 128 distinct adapters (bench/lora_stream_probe.cpp, where the bundle has it).
steps="$here/ncu_steps.py"
[ -f "$steps" ] || steps="$here/../bench/ncu_steps.py"
if command -v ncu > /dev/null; then
  timeout 150 ncu --profile-from-start off --clock-control none --cache-control none --graph-profiling node \
    --metrics gpu__time_duration.sum --csv "$engine" --model tests/data/configs/llama3-8b --load-format dummy \
    --device cuda --batches 1,32,128 --replays 5 --prefill 16 --no-breakdown --no-compare --profile-steps \
    > "$logs/steps.csv" 2> "$logs/steps.err" && python3 "$steps" "$logs/steps.csv" --layer 1 > "$logs/steps.txt"
fi
probe="$PWD/$build/bench/lora_stream_probe"
[ -x "$probe" ] && timeout 60 "$probe" > "$logs/lora_stream_probe.log" 2>&1
# The same decode steps without programmatic dependent launch, to see what the launch overlap buys.
timeout 90 "$engine" --model tests/data/configs/llama3-8b --load-format dummy --device cuda --pdl off \
  --batches 1,128 --replays 30 --prefill 128 --no-breakdown --lora-rank 0 > "$logs/bench_no_pdl.log" 2>&1
# The same steps with cuBLASLt plans tuned on L2-warm weights (the first tuner), to see what cold tuning buys.
timeout 90 "$engine" --model tests/data/configs/llama3-8b --load-format dummy --gemm-tune warm \
  --device cuda --batches 1,32,128 --replays 50 --no-breakdown --lora-rank 0 > "$logs/bench_warm_tune.log" 2>&1
fi


echo
echo "== summary ($(head -2 "$logs/device.txt" | tail -1))"
printf '%-22s %s\n' "ctest -L gpu" "$( [ $ctest_rc -eq 0 ] && echo pass || echo "FAIL (rc $ctest_rc)") $(grep -E 'tests passed|tests failed' "$logs/ctest.log" | tail -1)"
printf '%-22s %s\n' "CLI oracle" "$(tail -1 "$logs/cli_oracle.log")"
printf '%-22s %s\n' "kernel bench" "$( [ $attn_rc -eq 0 ] && echo ok || echo "FAIL (rc $attn_rc)")"
grep -E "^ +(batch|[0-9]+) +[0-9a-z]+ +[0-9KV]" "$logs/kernel_bench.log" | head -7
grep -E "^ +(proj|qkv|o|gate_up|down) +(rows|32) " "$logs/kernel_bench.log"
printf '%-22s %s\n' "engine_bench" "$( [ $bench_rc -eq 0 ] && echo ok || echo "FAIL (rc $bench_rc)")"
echo "decode steps (rows: default paths with adapters none/one/distinct; then batch 1 without the GEMV; 32 and 128"
echo "with the skinny GEMM off), prefill with and without an adapter:"
grep -E "^device:|^adapters:|^ +(1|32|128) +(base|one|distinct) |^prefill|GEMM floor|with one rank" "$logs/bench.log" | head -20
grep -E "^  sum x" "$logs/bench.log"
[ "$quick" = quick ] || {
echo "without PDL:"
grep -E "^ +(1|128) +base " "$logs/bench_no_pdl.log" | head -2
echo "cuBLASLt plans tuned on L2-warm weights:"
grep -E "^ +(1|32|128) +base |^prefill" "$logs/bench_warm_tune.log" | head -4
echo "peer:"
grep -E "tok/s|model:" "$logs/peer.log"
echo "each step's kernels, serial (ncu; batches 1, 32, 128, each base, one adapter, distinct; $logs/steps.txt):"
grep -E "^step" "$logs/steps.txt" 2> /dev/null
cat "$logs/lora_stream_probe.log" 2> /dev/null
}
exit $(( ctest_rc != 0 || cli_rc != 0 || bench_rc != 0 || attn_rc != 0 ))
