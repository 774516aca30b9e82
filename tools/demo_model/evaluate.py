"""Float32 reference evaluation of the saved base and adapters, as our engine must reproduce it.

The saved bf16 base and the saved adapter are loaded from disk and upcast to float32 (eager attention, no
TF32), prompts go through the saved tokenizer's chat template, and decoding is greedy until <|im_end|> or
max_new_tokens. Prompts are decoded in one left-padded batch; each result is then checked against an
unpadded, unbatched teacher-forced forward pass (argmax at every generated position) and decoded again
unbatched where the two disagree, so that what is written is what a one-sequence float32 engine computes.
The smallest top-1 minus top-2 logit gap along each output is written too (`min_margin`): a gap near zero
marks a near-tie where another float32 implementation may legitimately pick the other token.

Usable on its own: python3 tools/demo_model/evaluate.py --out models/demo
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tasks  # noqa: E402
from tok import IM_END, render_chat_prompt  # noqa: E402


def _load_base(base_dir, device):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    return model.to(device).eval()


def _load_adapter(base_dir, adapter_dir, device):
    from peft import PeftModel
    model = PeftModel.from_pretrained(_load_base(base_dir, device), adapter_dir)
    for n, p in model.named_parameters():
        if p.dtype != torch.float32:
            raise RuntimeError(f"{n} is {p.dtype}, expected float32")
    return model.to(device).eval()


@torch.no_grad()
def _generate_batched(model, prompts_ids, max_new, eos_id, pad_id, device):
    width = max(len(p) for p in prompts_ids)
    ids = torch.full((len(prompts_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts_ids), width), dtype=torch.long)
    for i, p in enumerate(prompts_ids):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                         num_beams=1, max_new_tokens=max_new, eos_token_id=eos_id, pad_token_id=pad_id,
                         use_cache=True)
    res = []
    for row in out[:, width:].tolist():
        gen = []
        for t in row:
            gen.append(t)
            if t == eos_id:
                break
        res.append(gen)
    return res


@torch.no_grad()
def _generate_one(model, prompt_ids, max_new, eos_id, pad_id, device):
    ids = torch.tensor([prompt_ids], device=device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                         max_new_tokens=max_new, eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True)
    gen = []
    for t in out[0, len(prompt_ids):].tolist():
        gen.append(t)
        if t == eos_id:
            break
    return gen


@torch.no_grad()
def _teacher_forced(model, prompt_ids, gen, device):
    """(argmax agrees at every generated position, smallest top1-top2 logit gap)."""
    seq = torch.tensor([prompt_ids + gen[:-1]], device=device)
    logits = model(input_ids=seq, use_cache=False).logits[0, len(prompt_ids) - 1:].float()
    top2 = logits.topk(2, dim=-1)
    agree = top2.indices[:, 0].tolist() == gen
    margin = (top2.values[:, 0] - top2.values[:, 1]).min().item()
    return agree, margin


def _decode_all(model, tok, prompts_ids, max_new, eos_id, pad_id, device):
    outs = _generate_batched(model, prompts_ids, max_new, eos_id, pad_id, device)
    results, regenerated = [], 0
    for p, gen in zip(prompts_ids, outs):
        agree, margin = _teacher_forced(model, p, gen, device)
        redone = False
        if not agree:
            gen = _generate_one(model, p, max_new, eos_id, pad_id, device)
            agree, margin = _teacher_forced(model, p, gen, device)
            redone, regenerated = True, regenerated + 1
        body = gen[:-1] if gen and gen[-1] == eos_id else gen
        results.append({
            "ids": gen,
            "text": tok.decode(body, skip_special_tokens=False),
            "finished": bool(gen) and gen[-1] == eos_id,
            "min_margin": round(margin, 5),
            "teacher_forced_agrees": agree,
            "decoded_unbatched": redone,
        })
    return results, regenerated


def evaluate(out_dir, names, seed, device, log=print, about=None):
    """Writes out_dir/eval/NAME.json for each adapter; returns {name: summary}."""
    import peft
    import transformers
    from transformers import AutoTokenizer

    torch.set_float32_matmul_precision("highest")
    base_dir = os.path.join(out_dir, "base")
    tok = AutoTokenizer.from_pretrained(base_dir)
    eos_id = tok.convert_tokens_to_ids(IM_END)
    pad_id = tok.pad_token_id
    base = _load_base(base_dir, device)
    os.makedirs(os.path.join(out_dir, "eval"), exist_ok=True)
    summary = {}
    for name in names:
        t0 = time.time()
        test, _ = tasks.held_out(name, seed)
        prompts = [p for p, _ in test]
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                         tokenize=False) for p in prompts]
        for p, t in zip(prompts, texts):
            if t != render_chat_prompt(p):
                raise RuntimeError(f"the saved chat template renders {t!r}, not {render_chat_prompt(p)!r}")
        prompts_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        answer_len = max(len(tok(a, add_special_tokens=False)["input_ids"]) for _, a in test) + 1
        max_new = max(8, answer_len + 4)
        model = _load_adapter(base_dir, os.path.join(out_dir, "adapters", name), device)
        ad, ad_redo = _decode_all(model, tok, prompts_ids, max_new, eos_id, pad_id, device)
        del model
        bs, bs_redo = _decode_all(base, tok, prompts_ids, max_new, eos_id, pad_id, device)
        rows = []
        for (p, exp), text, ids, a, b in zip(test, texts, prompts_ids, ad, bs):
            a["correct"] = a["finished"] and a["text"].strip() == exp
            b["correct"] = b["finished"] and b["text"].strip() == exp
            rows.append({"prompt": p, "chat_text": text, "prompt_ids": ids, "expected": exp,
                         "adapter": a, "base": b})
        acc = sum(r["adapter"]["correct"] for r in rows) / len(rows)
        base_acc = sum(r["base"]["correct"] for r in rows) / len(rows)
        doc = {
            "adapter": name,
            "task": (about or {}).get(name, tasks.TASKS[name]["about"]),
            "base_dir": "base",
            "adapter_dir": f"adapters/{name}",
            "reference": "transformers+peft, weights upcast to float32 from the saved files, eager attention, "
                         "no TF32, greedy (argmax), no sampling parameters",
            "device": device if device == "cpu" else torch.cuda.get_device_name(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__},
            "seed": seed,
            "stop_token_ids": [eos_id],
            "max_new_tokens": max_new,
            "correct_means": "the output finished with <|im_end|> and its text, stripped, equals expected",
            "accuracy": acc,
            "base_accuracy": base_acc,
            "regenerated_unbatched": {"adapter": ad_redo, "base": bs_redo},
            "prompts": rows,
        }
        path = os.path.join(out_dir, "eval", f"{name}.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        min_margin = min(r[k]["min_margin"] for r in rows for k in ("adapter", "base"))
        summary[name] = {"accuracy": acc, "base_accuracy": base_acc, "max_new_tokens": max_new,
                         "regenerated_unbatched": ad_redo + bs_redo, "min_margin": min_margin,
                         "seconds": round(time.time() - t0, 2),
                         "example": {"prompt": rows[0]["prompt"], "adapter": rows[0]["adapter"]["text"],
                                     "base": rows[0]["base"]["text"]}}
        log(f"eval {name}: adapter {acc:.0%}, base {base_acc:.0%} on {len(rows)} prompts "
            f"(max_new_tokens {max_new}, re-decoded unbatched {ad_redo}+{bs_redo}, "
            f"smallest margin {min_margin:.4f}, {time.time() - t0:.1f}s)")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adapters", nargs="*", default=None)
    args = ap.parse_args()
    names = args.adapters or sorted(os.listdir(os.path.join(args.out, "adapters")))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    summary = evaluate(args.out, names, args.seed, device)
    print(json.dumps({k: {kk: v[kk] for kk in ("accuracy", "base_accuracy")} for k, v in summary.items()}))


if __name__ == "__main__":
    main()
