# fuzz-lib.sh: what the scripts/fuzz-*.sh libFuzzer runs share (sourced, not run). fuzz_build compiles sources
# with clang's fuzzer, ASan and UBSan instrumentation into OUT/objs (only what changed since, one job per core)
# and links OUT/NAME; fuzz_run runs it for a bounded time from OUT/corpus and a seed directory and fails on any
# crash, hang, leak or sanitizer report.
# Needs: cxx (clang++ unless CXX_FUZZ says otherwise), run from the repository root.

cxx=${CXX_FUZZ:-clang++}

# fuzz_build OUT NAME PKGS SOURCE... : PKGS are pkg-config packages ("" for none); headers under src/ that are
# newer than an object make it stale too.
fuzz_build() {
  local out=$1 name=$2 pkgs=$3
  shift 3
  mkdir -p "$out/objs"
  local flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer -Isrc -DLS_SOURCE_DIR="\"$PWD\"")
  local libs=()
  if [[ -n $pkgs ]]; then
    flags+=($(pkg-config --cflags $pkgs))
    libs=($(pkg-config --libs $pkgs))
  fi
  local objs=() stale=() src obj
  for src in "$@"; do
    obj=$out/objs/$(echo "$src" | tr / _).o
    if [[ ! -f $obj || $src -nt $obj || -n $(find src -name '*.h' -newer "$obj" -print -quit) ]]; then
      stale+=("$src")
    fi
    objs+=("$obj")
  done
  if ((${#stale[@]} > 0)); then
    printf '%s\n' "${stale[@]}" | FUZZ_OUT=$out FUZZ_CXX=$cxx FUZZ_FLAGS="${flags[*]}" xargs -P "$(nproc)" -I{} \
      bash -c 'src={}; $FUZZ_CXX $FUZZ_FLAGS -c "$src" -o "$FUZZ_OUT/objs/$(echo "$src" | tr / _).o"'
  fi
  "$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" "${libs[@]}" -o "$out/$name"
}

# fuzz_run OUT NAME SECONDS SEEDS [libFuzzer options...]
fuzz_run() {
  local out=$1 name=$2 seconds=$3 seeds=$4
  shift 4
  mkdir -p "$out/corpus"
  echo "$name: running for ${seconds}s"
  "$out/$name" -artifact_prefix="$out/" -max_total_time="$seconds" -print_final_stats=1 "$@" "$out/corpus" "$seeds" \
    2>&1 | tail -n 25
  return "${PIPESTATUS[0]}"
}
