#!/usr/bin/env bash
# fuzz-adapter.sh: builds the adapter-files libFuzzer target (tests/unit/lora_adapter_fuzz.cpp: adapter_config.json
# and adapter_model.safetensors against a small Llama-shaped base) in build-fuzz-adapter/ and runs it for a bounded
# time from seeds of valid PEFT adapters in every dtype and target spelling. Fails on any crash, hang, leak or
# sanitizer report. Usage: scripts/fuzz-adapter.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${2:-build-fuzz-adapter}
source scripts/fuzz-lib.sh
fuzz_build "$out" lora_adapter_fuzz libpcre2-8 src/core/*.cpp src/io/safetensors.cpp src/io/mapped_file.cpp \
  src/io/model_config.cpp src/lora/lora_adapter.cpp src/lora/peft_config.cpp src/lora/module_regex.cpp \
  tests/unit/lora_adapter_fuzz.cpp

# Seeds: u16 length + adapter_config.json + a safetensors file, for the fuzz target's base (3 layers, hidden 64,
# q 64, kv 32, mlp 96).
seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds"
python3 - "$seeds" <<'PY'
import json, os, random, struct, sys
seeds = sys.argv[1]
rng = random.Random(7)
SHAPES = {"q_proj": (64, 64), "k_proj": (64, 32), "v_proj": (64, 32), "o_proj": (64, 64),
          "gate_proj": (64, 96), "up_proj": (64, 96), "down_proj": (96, 64)}  # (in, out)
ATTN = {"q_proj", "k_proj", "v_proj", "o_proj"}
def tensor_bytes(dtype, count):
    if dtype == "F32":
        return struct.pack(f"<{count}f", *[rng.uniform(-1, 1) for _ in range(count)])
    if dtype == "F16":
        return struct.pack(f"<{count}e", *[rng.uniform(-1, 1) for _ in range(count)])
    return b"".join(struct.pack("<f", rng.uniform(-1, 1))[2:] for _ in range(count))  # BF16: the high half
def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob
def adapter(modules, rank, dtype="F32", layers=(0, 1, 2), ranks=None, suffix="", config_extra=None):
    tensors = []
    for l in layers:
        for m in modules:
            r = (ranks or {}).get(m, rank)
            d_in, d_out = SHAPES[m]
            part = "self_attn" if m in ATTN else "mlp"
            pre = f"base_model.model.model.layers.{l}.{part}.{m}"
            tensors.append((f"{pre}.lora_A{suffix}.weight", dtype, [r, d_in], tensor_bytes(dtype, r * d_in)))
            tensors.append((f"{pre}.lora_B{suffix}.weight", dtype, [d_out, r], tensor_bytes(dtype, d_out * r)))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": list(modules),
              "base_model_name_or_path": "fuzz-base"}
    config.update(config_extra or {})
    return json.dumps(config).encode(), safetensors(tensors, {"format": "pt"})
def put(name, pair):
    config, weights = pair
    with open(os.path.join(seeds, name), "wb") as f:
        f.write(struct.pack("<H", len(config)) + config + weights)
put("qv_f32", adapter(["q_proj", "v_proj"], 2))
put("all_f16", adapter(list(SHAPES), 1, "F16", config_extra={"target_modules": "all-linear"}))
put("mlp_bf16", adapter(["gate_proj", "up_proj", "down_proj"], 3, "BF16"))
put("patterns", adapter(["q_proj", "k_proj", "o_proj"], 2, ranks={"k_proj": 4},
                        config_extra={"rank_pattern": {"k_proj": 4}, "alpha_pattern": {"o_proj": 1},
                                      "use_rslora": True}))
put("regex_targets", adapter(["q_proj", "v_proj"], 2, layers=(1,),
                             config_extra={"target_modules": r".*\.1\.self_attn\.(q|v)_proj"}))
put("layers_to_transform", adapter(["v_proj"], 2, layers=(0, 2),
                                   config_extra={"layers_to_transform": [0, 2], "layers_pattern": "layers"}))
put("default_suffix", adapter(["q_proj"], 2, suffix=".default"))
put("bad_rank", adapter(["q_proj"], 2, config_extra={"r": 3}))
put("empty", (b"{}", safetensors([])))
PY
fuzz_run "$out" lora_adapter_fuzz "$seconds" "$seeds" -timeout=10 -rss_limit_mb=2048 -max_len=65536
