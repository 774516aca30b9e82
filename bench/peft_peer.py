#!/usr/bin/env python3
"""The peer of engine_bench's adapter figures: transformers+peft generation on the same GPU, Llama-3-8B shape
(tests/data/configs/llama3-8b, random bf16 weights), batch 32 with a 1024-token prompt each (the context the
engine's decode steps use), greedy, a fixed number of new tokens; base model (adapters disabled) and 32 distinct
rank-16 adapters on all 7 projections mixed in the batch (PEFT's adapter_names). Prints output tokens/s, and
the time per decode step from two generations of different length (so the prompt's prefill cancels out).

Usage: python3 bench/peft_peer.py [CONFIG_DIR] [--batch 32] [--prompt 1024] [--new 8]
"""
import argparse, json, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def generate(model, ids, new, adapters):
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0,
                  attention_mask=torch.ones_like(ids))
    if adapters is not None:
        kwargs["adapter_names"] = adapters
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        out = model.generate(ids, **kwargs)
    torch.cuda.synchronize()
    assert out.shape[1] == ids.shape[1] + new, out.shape
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?", default="tests/data/configs/llama3-8b")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=1024)
    ap.add_argument("--new", type=int, default=8)
    ap.add_argument("--rank", type=int, default=16)
    a = ap.parse_args()
    cfg = LlamaConfig(**json.load(open(f"{a.config}/config.json")))
    torch.manual_seed(0)
    t = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params, built in "
          f"{time.perf_counter() - t:.1f} s on {torch.cuda.get_device_name()}", flush=True)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lcfg = LoraConfig(r=a.rank, lora_alpha=2 * a.rank, target_modules=targets, init_lora_weights=False)
    model = get_peft_model(model, lcfg, adapter_name="a0")
    for i in range(1, a.batch):
        model.add_adapter(f"a{i}", lcfg)
    model = model.to(torch.bfloat16).eval()
    names = [f"a{i}" for i in range(a.batch)]
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.prompt), device="cuda")
    print(f"{a.batch} adapters of rank {a.rank} on all 7 projections; batch {a.batch}, prompt {a.prompt}, "
          f"{a.new} new tokens, greedy", flush=True)
    for label, adapters in [("base (adapters disabled)", None), (f"{a.batch} distinct adapters", names)]:
        run = (lambda n: generate(model, ids, n, adapters))
        if adapters is None:
            with model.disable_adapter():
                run(2)  # warm-up
                short, full = run(2), run(a.new)
        else:
            run(2)
            short, full = run(2), run(a.new)
        step = (full - short) / (a.new - 2)
        print(f"  {label:28s}: {a.batch * a.new / full:8.1f} output tok/s over the whole generate "
              f"({full:.2f} s), decode step {step * 1e3:.1f} ms = {a.batch / step:.0f} tok/s", flush=True)


if __name__ == "__main__":
    main()
