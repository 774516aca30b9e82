#!/usr/bin/env bash
# gpu-pack.sh: packs what scripts/gpu-check.sh needs from a CUDA build directory into a bundle (stripped
# loraserve, engine_bench, GPU test binaries and lora_stream_probe if built, the CTest files, the CMake cache),
# small enough to travel to the GPU machine (the device tool's carry limit is 64 MiB with the working tree; xz -9e
# packs it in about half the size of tar -J's default level). With a DEST folder it also puts
# scripts/gpu-check.sh, bench/peft_peer.py and bench/ncu_steps.py beside the bundle, so a checkout that lacks them
# can run `bash DEST/gpu-check.sh` with DEST carried.
# Run here, from the repository root, after building: scripts/gpu-pack.sh [BUILD_DIR] [DEST]
# (default DEST: carry/, the bundle only).
set -euo pipefail
build=${1:-build-cuda}
dest=${2:-}
[ -f "$build/CMakeCache.txt" ] || { echo "gpu-pack: no CMake build in $build" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$build"
(cd "$build" && find . -name CTestTestfile.cmake -o -name CMakeCache.txt) | while read -r f; do
  mkdir -p "$stage/$build/$(dirname "$f")"
  cp "$build/$f" "$stage/$build/$f"
done
for bin in app/loraserve bench/engine_bench tests/kernels/cuda_kernels_test tests/kernels/cuda_oracle_test \
  bench/lora_stream_probe; do
  if [ ! -f "$build/$bin" ]; then
    [ "$bin" = bench/lora_stream_probe ] && continue  # optional: gpu-check.sh runs it where it is built
    echo "gpu-pack: $build/$bin is not built" >&2
    exit 1
  fi
  mkdir -p "$stage/$build/$(dirname "$bin")"
  strip -o "$stage/$build/$bin" "$build/$bin"
done
if [ -z "$dest" ]; then
  mkdir -p carry
  tar -C "$stage" -cf - "$build" | xz -9e -T0 > carry/gpu-build.tar.xz
  ls -l carry/gpu-build.tar.xz
else
  mkdir -p "$dest"
  tar -C "$stage" -cf - "$build" | xz -9e -T0 > "$dest/gpu-build.tar.xz"
  cp scripts/gpu-check.sh bench/peft_peer.py bench/ncu_steps.py "$dest/"
  ls -l "$dest"
fi
