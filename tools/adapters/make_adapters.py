#!/usr/bin/env python3
"""make_adapters.py: generates PEFT LoRA adapters with random weights for a base model's config.json, the way
PEFT saves them (adapter_config.json + adapter_model.safetensors, tensors named
base_model.model.model.layers.N.{self_attn,mlp}.X_proj.lora_{A,B}.weight). Used for tests and benchmarks that
need many adapters (hundreds of names in an --adapter-dir root) or a large one (a Llama-3-8B-shaped rank-16
adapter on every projection). The weights are seeded, so the same command writes the same files.

    python tools/adapters/make_adapters.py --base models/demo/base --out /tmp/adapters --count 200 \
        --ranks 4,8,16,32,64 --modules mixed --scale 0.05
"""
import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
MODULE_SETS = [("q_proj", "v_proj"), ATTN, MLP, ATTN + MLP, ("q_proj", "k_proj", "v_proj"), ("o_proj", "down_proj")]


def shapes(cfg):
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or h // heads
    inter = cfg["intermediate_size"]
    return {"q_proj": (h, heads * hd), "k_proj": (h, kv * hd), "v_proj": (h, kv * hd), "o_proj": (heads * hd, h),
            "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}


def write_adapter(path, cfg, rank, modules, alpha, scale, seed, dtype):
    rng = np.random.default_rng(seed)
    dims = shapes(cfg)
    tensors = {}
    for layer in range(cfg["num_hidden_layers"]):
        for m in modules:
            din, dout = dims[m]
            part = "self_attn" if m in ATTN else "mlp"
            key = f"base_model.model.model.layers.{layer}.{part}.{m}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((rank, din)) * scale).astype(dtype)
            tensors[f"{key}.lora_B.weight"] = (rng.standard_normal((dout, rank)) * scale).astype(dtype)
    os.makedirs(path, exist_ok=True)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
              "target_modules": list(modules), "lora_dropout": 0.0, "bias": "none", "use_rslora": False,
              "use_dora": False, "modules_to_save": None, "fan_in_fan_out": False, "rank_pattern": {},
              "alpha_pattern": {}, "base_model_name_or_path": None, "inference_mode": True}
    tmp = os.path.join(path, ".adapter_model.safetensors.tmp")
    save_file(tensors, tmp)
    os.replace(tmp, os.path.join(path, "adapter_model.safetensors"))
    with open(os.path.join(path, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="model directory with config.json")
    p.add_argument("--out", required=True, help="root directory; adapters go to OUT/PREFIX0000, ...")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--prefix", default="lora")
    p.add_argument("--ranks", default="16", help="comma-separated ranks, used in turn")
    p.add_argument("--modules", default="all", help="'all' (seven projections), 'mixed' (sets in turn) or a list")
    p.add_argument("--alpha", type=float, default=0.0, help="lora_alpha (0: twice the rank)")
    p.add_argument("--scale", type=float, default=0.05, help="standard deviation of the random weights")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with open(os.path.join(a.base, "config.json")) as f:
        cfg = json.load(f)
    ranks = [int(r) for r in a.ranks.split(",")]
    for i in range(a.count):
        rank = ranks[i % len(ranks)]
        if a.modules == "all":
            modules = ATTN + MLP
        elif a.modules == "mixed":
            modules = MODULE_SETS[i % len(MODULE_SETS)]
        else:
            modules = tuple(a.modules.split(","))
        name = f"{a.prefix}{i:04d}" if a.count > 1 else a.prefix
        write_adapter(os.path.join(a.out, name), cfg, rank, modules, a.alpha or 2.0 * rank, a.scale, a.seed + i,
                      np.dtype(a.dtype))
    print(f"wrote {a.count} adapters under {a.out}")


if __name__ == "__main__":
    main()
