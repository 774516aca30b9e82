#!/usr/bin/env python3
"""Float32 reference logits from transformers+peft on the CPU, the oracle the engine's tests compare against.

Two jobs (run with a Python that has torch, transformers and peft; see tests/data/oracle_extra/README.md):
  --shared DIR   recompute teacher-forced logits and greedy paths for the models/adapters/prompts of the shared
                 oracle (../shared/oracle) on the CPU in float32 -> tests/data/oracle_cpu/<arch>/
  --extra        build extra tiny cases that differ from the shared ones in ways the formats allow (explicit head_dim,
                 tied embeddings, llama3 and linear rope scaling in the old rope_scaling form, Qwen2 biases, a Mistral
                 sliding window, adapters on some layers only, regex / all-linear targets, rank and alpha patterns,
                 bf16 / f16 adapter files) -> tests/data/oracle_extra/<case>/ in the shared oracle's layout.
Every path is the prompt followed by greedy tokens (end-of-sequence not treated specially), and logits are
teacher-forced along the path, exactly as ../shared/oracle/README.md describes.
"""
import argparse, json, os, shutil
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config
from peft import LoraConfig, PeftModel, get_peft_model

torch.set_num_threads(2)


def greedy_path(model, prompt, n):
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(torch.argmax(logits)))
    return ids


def path_logits(model, path):
    with torch.no_grad():
        return model(torch.tensor([path])).logits[0].float().contiguous()


def load_base(base_dir):
    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()


def load_adapter(base_dir, adapter_dir):
    return PeftModel.from_pretrained(load_base(base_dir), adapter_dir).eval()


def compute_case(case_dir, base_dir, prompts, adapters, new_tokens):
    """adapters: list of (name, dir). Writes case.json and logits.safetensors into case_dir."""
    tensors, case = {}, {"prompts": prompts, "adapters": []}
    base = load_base(base_dir)
    case["base_paths"] = [greedy_path(base, p, new_tokens) for p in prompts]
    for i, path in enumerate(case["base_paths"]):
        tensors[f"base.{i}"] = path_logits(base, path)
    for name, adir in adapters:
        model = load_adapter(base_dir, adir)
        paths = [greedy_path(model, p, new_tokens) for p in prompts]
        case["adapters"].append({"name": name, "paths": paths})
        for i, path in enumerate(paths):
            tensors[f"{name}.{i}"] = path_logits(model, path)
    os.makedirs(case_dir, exist_ok=True)
    save_file(tensors, os.path.join(case_dir, "logits.safetensors"))
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(case, f)


def shared(shared_dir, out_dir):
    for arch in json.load(open(os.path.join(shared_dir, "manifest.json")))["cases"]:
        src = json.load(open(os.path.join(shared_dir, arch, "case.json")))
        new_tokens = len(src["base_paths"][0]) - len(src["prompts"][0])
        adapters = [(a["name"], os.path.join(shared_dir, a["path"])) for a in src["adapters"]]
        compute_case(os.path.join(out_dir, arch), os.path.join(shared_dir, arch, "base"), src["prompts"], adapters,
                     new_tokens)
        print("shared", arch, "done", flush=True)


def save_base(model, base_dir, old_rope_form=None):
    model = model.to(torch.bfloat16)
    model.save_pretrained(base_dir, safe_serialization=True)
    if old_rope_form is not None:  # rewrite the v5 rope_parameters object into the older rope_theta/rope_scaling keys
        path = os.path.join(base_dir, "config.json")
        cfg = json.load(open(path))
        params = cfg.pop("rope_parameters")
        cfg["rope_theta"] = params.pop("rope_theta")
        params.pop("rope_type", None)
        if old_rope_form:
            cfg["rope_scaling"] = dict(old_rope_form, **params)
        json.dump(cfg, open(path, "w"), indent=2)


def save_adapter(base_dir, adapter_dir, lora_config, dtype, seed):
    torch.manual_seed(seed)
    model = get_peft_model(load_base(base_dir), lora_config)
    with torch.no_grad():  # random B too, so the adapter changes the output strongly
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)
    model.save_pretrained(adapter_dir, safe_serialization=True)
    # store the tensors in the requested dtype, as adapters on the Hub come in F32, F16 or BF16
    from safetensors.torch import load_file
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    save_file({k: v.to(dtype).contiguous() for k, v in load_file(path).items()}, path)


def extra(out_dir):
    torch.manual_seed(0)
    prompts = [[5], [17, 3, 99, 42, 7, 1, 250, 8, 33], [int(x) for x in torch.randint(0, 256, (40,))]]
    cases = {
        # explicit head_dim != hidden/heads, tied embeddings, llama3 rope in the old rope_scaling form
        "llama_hd_tied_llama3": (
            LlamaConfig(vocab_size=256, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                        num_attention_heads=3, num_key_value_heads=1, head_dim=32, tie_word_embeddings=True,
                        max_position_embeddings=512, rms_norm_eps=1e-5,
                        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 16}),
            {"rope_type": "llama3"},
            [("layers1_qod", LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj", "down_proj"],
                                        layers_to_transform=[1], init_lora_weights=False), torch.bfloat16),
             ("alllinear_rs", LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", use_rslora=True,
                                         alpha_pattern={"layers.0.mlp.down_proj": 16}, init_lora_weights=False),
              torch.float16)]),
        # Qwen2: q/k/v biases, tied embeddings, large theta
        "qwen2_bias": (
            Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                        max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
            None,
            [("regex_qk", LoraConfig(r=3, lora_alpha=6, target_modules=r"model\.layers\.[01]\.self_attn\.(q|k)_proj",
                                     init_lora_weights=False), torch.float32),
             ("pattern_order", LoraConfig(r=4, lora_alpha=4, target_modules=["v_proj", "up_proj", "gate_proj"],
                                          rank_pattern={"layers.1.self_attn.v_proj": 6, "v_proj": 2},
                                          alpha_pattern={"mlp.up_proj": 12}, init_lora_weights=False),
              torch.bfloat16)]),
        # Mistral with a short sliding window so the 40-token prompt exercises it; linear rope in old "type" form
        "mistral_window_linear": (
            MistralConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=8, num_key_value_heads=2, head_dim=8, sliding_window=8,
                          max_position_embeddings=512,
                          rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
            {"type": "linear"},
            [("layers0_v", LoraConfig(r=5, lora_alpha=10, target_modules=["v_proj", "down_proj"],
                                      layers_to_transform=0, init_lora_weights=False), torch.float32)]),
    }
    for name, (config, old_rope, adapters) in cases.items():
        case_dir = os.path.join(out_dir, name)
        shutil.rmtree(case_dir, ignore_errors=True)
        base_dir = os.path.join(case_dir, "base")
        torch.manual_seed(1)
        save_base(AutoModelForCausalLM.from_config(config), base_dir, old_rope)
        adapter_dirs = []
        for i, (aname, lcfg, dtype) in enumerate(adapters):
            adir = os.path.join(case_dir, "adapters", aname)
            save_adapter(base_dir, adir, lcfg, dtype, seed=10 + i)
            adapter_dirs.append((aname, adir))
        compute_case(case_dir, base_dir, prompts, adapter_dirs, new_tokens=12)
        case = json.load(open(os.path.join(case_dir, "case.json")))
        for a in case["adapters"]:
            a["path"] = f"adapters/{a['name']}"
        json.dump(case, open(os.path.join(case_dir, "case.json"), "w"))
        print("extra", name, "done", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared")
    ap.add_argument("--extra", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.shared:
        shared(args.shared, args.out)
    if args.extra:
        extra(args.out)
