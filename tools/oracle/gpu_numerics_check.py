#!/usr/bin/env python3
"""Where do the shared oracle's logits come from? Recomputes them with transformers+peft in float32 on CUDA
(sdpa and eager attention, TF32 off and on) and on the CPU, and prints each one's max per-row error
max|x - ref| / max|ref| against ../shared/oracle's logits.safetensors (copied to tests/data/oracle)."""
import json, sys, torch, numpy as np
from transformers import AutoModelForCausalLM
from peft import PeftModel
from safetensors.numpy import load_file

root = sys.argv[1] if len(sys.argv) > 1 else "tests/data/oracle"


def err(a, b):
    return float((np.abs(a - b).max(axis=1) / np.abs(b).max(axis=1)).max())


for arch in ["llama", "mistral"]:
    case = json.load(open(f"{root}/{arch}/case.json"))
    ref = load_file(f"{root}/{arch}/logits.safetensors")
    for name, adir, paths in [("base", None, case["base_paths"])] + [
            (a["name"], f"{root}/{a['path']}", a["paths"]) for a in case["adapters"]]:
        row = []
        for device, impl, tf32 in [("cpu", "sdpa", False), ("cuda", "sdpa", False), ("cuda", "eager", False),
                                   ("cuda", "sdpa", True)]:
            if device == "cuda" and not torch.cuda.is_available():
                continue
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            m = AutoModelForCausalLM.from_pretrained(f"{root}/{arch}/base", dtype=torch.float32,
                                                     attn_implementation=impl)
            if adir:
                m = PeftModel.from_pretrained(m, adir)
            m = m.to(device).eval()
            worst = 0.0
            with torch.no_grad():
                for i, path in enumerate(paths):
                    lg = m(torch.tensor([path], device=device)).logits[0].float().cpu().numpy()
                    worst = max(worst, err(lg, ref[f"{name}.{i}"]))
            row.append(f"{device}/{impl}{'/tf32' if tf32 else ''}={worst:.1e}")
        print(arch, name, " ".join(row), flush=True)
