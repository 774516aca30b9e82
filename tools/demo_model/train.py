"""Trains loraserve's demo model: a small Llama base, a byte-level BPE tokenizer and four PEFT LoRA adapters.

    python3 tools/demo_model/train.py --out models/demo --seed 0 --minutes 7 [--tiny] [--pack DIR]

Runs on one GPU in about --minutes of wall time (the budget is split between pretraining, the adapters and
the evaluation; see BUDGET). --tiny is a seconds-long CPU smoke test with a toy model: its outputs are not
the demo model. --pack DIR also writes DIR/demo.tar.NN (parts of at most 15 MiB) after every stage.
"""

import time

T_START = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402

os.environ["TOKENIZERS_PARALLELISM"] = "true"  # no fork happens; encode_batch uses all cores
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import report  # noqa: E402
import tasks  # noqa: E402
import tok as tokmod  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]

# Model and data sizes. The full model: 6 layers, hidden 384, GQA 6 query / 2 key-value heads of 64, SwiGLU 1024,
# tied embeddings, vocabulary 8192.
FULL = dict(vocab=8192, hidden=384, layers=6, heads=6, kv_heads=2, head_dim=64, ffn=1024, max_pos=2048,
            corpus_mb=100, tokenizer_mb=24, seq=256, batch=256, lr=1.5e-3, warmup=150, measure=(10, 40),
            log_every=200, adapter_pool=120_000, adapter_eval_every=200, adapter_min_steps=300,
            adapter_warmup=40, adapter_measure=(5, 25), sample_tokens=64)
TINY = dict(vocab=1024, hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, ffn=128, max_pos=2048,
            corpus_mb=3, tokenizer_mb=2, seq=64, batch=16, lr=3e-3, warmup=15, measure=(3, 13),
            log_every=20, adapter_pool=4000, adapter_eval_every=40, adapter_min_steps=20,
            adapter_warmup=10, adapter_measure=(3, 8), sample_tokens=24)

# The adapters, trained in this order; later ones get the time that earlier ones save by stopping early.
# weight: relative share of the adapter phase. batch: sequences per step.
ADAPTERS = [
    dict(name="sql", r=8, alpha=16, targets=["q_proj", "v_proj"], rslora=False, lr=2e-3, batch=512, weight=0.8),
    dict(name="reverse", r=32, alpha=16, targets=ATTENTION, rslora=True, lr=2e-3, batch=512, weight=0.9),
    dict(name="upper", r=16, alpha=32, targets=ALL_LINEAR, rslora=False, lr=2e-3, batch=512, weight=1.1,
         rank_pattern={"down_proj": 8}, alpha_pattern={"down_proj": 16}),
    dict(name="calc", r=32, alpha=64, targets=ALL_LINEAR, rslora=False, lr=2e-3, batch=512, weight=1.6),
]

# Where each phase must end, as fractions of --minutes, counted from the start of the process.
BUDGET = dict(pretrain_end=0.50, adapters_end=0.94)

LOG = {}


def elapsed():
    return time.time() - T_START


def log(msg):
    print(f"[{elapsed():7.1f}s] {msg}", flush=True)


def save_log(out):
    LOG["elapsed_s"] = round(elapsed(), 1)
    with open(os.path.join(out, "train_log.json"), "w") as f:
        json.dump(LOG, f, indent=1)
        f.write("\n")


def pack(out, pack_dir, part_bytes=15 * 1024 * 1024):
    """out as one tar (top folder = basename of out), split into pack_dir/demo.tar.NN."""
    if not pack_dir:
        return
    os.makedirs(pack_dir, exist_ok=True)
    tmp = os.path.join(pack_dir, ".demo.tar.tmp")
    with tarfile.open(tmp, "w") as tf:
        top = os.path.basename(os.path.normpath(out))
        for dirpath, dirnames, filenames in os.walk(out):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                tf.add(full, arcname=os.path.join(top, os.path.relpath(full, out)))
    for old in os.listdir(pack_dir):
        if old.startswith("demo.tar."):
            os.remove(os.path.join(pack_dir, old))
    with open(tmp, "rb") as f:
        i = 0
        while True:
            chunk = f.read(part_bytes)
            if not chunk:
                break
            with open(os.path.join(pack_dir, f"demo.tar.{i:02d}"), "wb") as g:
                g.write(chunk)
            i += 1
    os.remove(tmp)
    log(f"packed {out} into {i} part(s) in {pack_dir}")


def checkpoint(args):
    save_log(args.out)
    report.write_readme(args.out, LOG)
    pack(args.out, args.pack)


def set_seeds(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_lr(step, peak, warmup, total, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    if total is None:
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def autocast(device):
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------- tokenizer


def build_tokenizer(args, S):
    t0 = time.time()
    train_texts, val_texts, info = corpus.select(args.seed, int(S["corpus_mb"] * 1e6))
    if info["chars"] < 0.25 * S["corpus_mb"] * 1e6:
        raise RuntimeError(f"only {info['chars']} characters of text found under {info['roots']}")
    log(f"corpus: {info['files']} files, {info['chars'] / 1e6:.1f} MB from {info['candidate_files']} "
        f"candidates in {info['packages']} packages ({time.time() - t0:.1f}s)")
    t1 = time.time()
    budget, sample = S["tokenizer_mb"] * 1e6, []
    for t in train_texts:
        sample.append(t)
        budget -= len(t)
        if budget <= 0:
            break
    tk = tokmod.train_tokenizer(sample, S["vocab"])
    base_dir = os.path.join(args.out, "base")
    tokmod.save_tokenizer(tk, base_dir, S["max_pos"])
    log(f"tokenizer: vocab {tk.get_vocab_size()} trained on {sum(map(len, sample)) / 1e6:.1f} MB "
        f"({time.time() - t1:.1f}s)")
    t2 = time.time()
    eot = tk.token_to_id(tokmod.ENDOFTEXT)

    def flat(texts):
        enc = tk.encode_batch(texts, add_special_tokens=False)
        arr = np.empty(sum(len(e.ids) + 1 for e in enc), dtype=np.int32)
        pos = 0
        for e in enc:
            n = len(e.ids)
            arr[pos:pos + n] = e.ids
            arr[pos + n] = eot
            pos += n + 1
        return arr

    train_ids, val_ids = flat(train_texts), flat(val_texts)
    log(f"tokenized: {len(train_ids) / 1e6:.2f}M train tokens, {len(val_ids) / 1e6:.3f}M validation tokens, "
        f"{info['chars'] / (len(train_ids) + len(val_ids)):.2f} chars/token ({time.time() - t2:.1f}s)")
    info.update(train_tokens=int(len(train_ids)), val_tokens=int(len(val_ids)), tokenizer_vocab=tk.get_vocab_size(),
                tokenizer_train_chars=sum(map(len, sample)))
    LOG["data"] = info
    LOG["timings"] = {"data_and_tokenizer_s": round(time.time() - t0, 1)}
    return tk, train_ids, val_ids


# ----------------------------------------------------------------------------------------------- pretraining


def make_config(S, vocab):
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=vocab, hidden_size=S["hidden"], intermediate_size=S["ffn"], num_hidden_layers=S["layers"],
        num_attention_heads=S["heads"], num_key_value_heads=S["kv_heads"], head_dim=S["head_dim"],
        max_position_embeddings=S["max_pos"], rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu",
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False, initializer_range=0.02,
        bos_token_id=None, eos_token_id=2, pad_token_id=0,
    )


def pretrain(args, S, device, tk, train_ids, val_ids):
    from transformers import GenerationConfig, LlamaForCausalLM

    set_seeds(args.seed)
    config = make_config(S, tk.get_vocab_size())
    model = LlamaForCausalLM(config).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.model.embed_tokens.weight.numel()
    log(f"model: {n_params / 1e6:.2f}M parameters ({n_embed / 1e6:.2f}M in the tied embedding), "
        f"attention {model.config._attn_implementation}")
    LOG["model"] = {"parameters": n_params, "embedding_parameters": n_embed,
                    "config": {k: v for k, v in config.to_dict().items() if k != "transformers_version"}}

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=S["lr"], betas=(0.9, 0.95), eps=1e-8, fused=(device == "cuda"))
    tokens = torch.from_numpy(train_ids).to(device)
    B, L = S["batch"], S["seq"]
    offsets = torch.arange(L, device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    deadline = T_START + BUDGET["pretrain_end"] * args.minutes * 60
    m0, m1 = S["measure"]
    warmup = max(S["warmup"], m1)
    total, step, t_m0, losses = None, 0, None, []
    t0 = time.time()
    log(f"pretraining: batch {B} x {L} tokens, peak lr {S['lr']}, warmup {warmup}, until "
        f"{deadline - T_START:.0f}s")
    while True:
        if total is not None and step >= total:
            break
        if time.time() > deadline + 20:
            log(f"WARNING: pretraining passed its deadline at step {step}; stopping before the planned {total}")
            break
        lr = cosine_lr(step, S["lr"], warmup, total)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(tokens) - L, (B,), device=device, generator=gen)
        x = tokens[starts[:, None] + offsets].long()
        with autocast(device):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step == m0:
            sync(device)
            t_m0 = time.time()
        elif step == m1:
            sync(device)
            per_step = (time.time() - t_m0) / (m1 - m0)
            total = m1 + max(0, int((deadline - time.time()) / per_step))
            total = max(total, warmup + 10)
            log(f"pretraining: {per_step * 1000:.1f} ms/step, {B * L / per_step / 1e6:.2f}M tokens/s "
                f"-> {total} steps planned ({total * B * L / 1e6:.0f}M tokens, "
                f"{total * B * L / len(tokens):.1f} epochs)")
            LOG["pretrain"] = {"ms_per_step_measured": round(per_step * 1000, 2), "planned_steps": total}
        if step % S["log_every"] == 0 or step == total:
            lv = loss.item()
            losses.append([step, round(lv, 4)])
            rate = step * B * L / (time.time() - t0)
            log(f"  step {step}/{total} loss {lv:.3f} lr {lr:.2e} {rate / 1e6:.2f}M tok/s")
            if not math.isfinite(lv):
                raise RuntimeError(f"pretraining loss is {lv} at step {step}")
    sync(device)
    train_s = time.time() - t0
    val_loss = validation_loss(model, val_ids, S, device)
    log(f"pretraining done: {step} steps, {step * B * L / 1e6:.0f}M tokens in {train_s:.0f}s, "
        f"last loss {loss.item():.3f}, validation loss {val_loss:.3f}")
    LOG.setdefault("pretrain", {}).update(
        steps=step, batch=B, seq=L, tokens=step * B * L, seconds=round(train_s, 1), peak_lr=S["lr"],
        warmup=warmup, final_lr_fraction=0.1, weight_decay=0.1, betas=[0.9, 0.95], grad_clip=1.0,
        train_loss_final=round(loss.item(), 4), val_loss=round(val_loss, 4), losses=losses,
        tokens_per_s=round(step * B * L / train_s))
    LOG["timings"]["pretrain_s"] = round(train_s, 1)

    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=2, pad_token_id=0, bos_token_id=None)
    base_dir = os.path.join(args.out, "base")
    model.save_pretrained(base_dir)
    with open(os.path.join(base_dir, "config.json")) as f:
        saved = json.load(f)
    if saved.get("dtype") != "bfloat16" or saved.get("architectures") != ["LlamaForCausalLM"]:
        raise RuntimeError(f"unexpected config.json: dtype {saved.get('dtype')}, {saved.get('architectures')}")
    log(f"saved base to {base_dir}")
    del model, opt, tokens
    if device == "cuda":
        torch.cuda.empty_cache()


@torch.no_grad()
def validation_loss(model, val_ids, S, device, n_windows=64):
    model.eval()
    L = S["seq"]
    ids = torch.from_numpy(val_ids).to(device)
    n = min(n_windows, max(1, (len(ids) - 1) // L))
    x = ids[: n * L].view(n, L).long()
    with autocast(device):
        loss = model(input_ids=x, labels=x).loss.item()
    model.train()
    return loss


@torch.no_grad()
def base_samples(args, S, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base_dir = os.path.join(args.out, "base")
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device).eval()
    out = []
    for i, prompt in enumerate(["def fibonacci(n):\n", "import numpy as np\n\n\ndef ",
                                "class Tokenizer:\n    \"\"\"", "The following example shows how to"]):
        torch.manual_seed(args.seed + i)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                             temperature=0.7, top_k=40, max_new_tokens=S["sample_tokens"], pad_token_id=0,
                             eos_token_id=0)
        text = tok.decode(gen[0], skip_special_tokens=True)
        out.append(text)
        log("sample:\n" + text + "\n" + "-" * 60)
    LOG["base_samples"] = {"how": f"temperature 0.7, top-k 40, {S['sample_tokens']} new tokens, float32",
                           "texts": out}


# ----------------------------------------------------------------------------------------------- adapters


def adapter_pool(tk, examples, device):
    """Right-padded ids and labels (-100 outside the answer and its <|im_end|>) for a list of examples."""
    eos = tk.token_to_id(tokmod.IM_END)
    p_enc = tk.encode_batch([tokmod.render_chat_prompt(p) for p, _ in examples], add_special_tokens=False)
    a_enc = tk.encode_batch([a for _, a in examples], add_special_tokens=False)
    # The prompt and the answer tokenize independently: the template's "\n" and the special tokens split.
    for (p, a), pe, ae in list(zip(examples, p_enc, a_enc))[:256]:
        full = tk.encode(tokmod.render_chat_prompt(p) + a + tokmod.IM_END, add_special_tokens=False).ids
        if full != pe.ids + ae.ids + [eos]:
            raise RuntimeError(f"prompt/answer tokenization is not separable for {p!r} -> {a!r}")
    lens = [len(pe.ids) + len(ae.ids) + 1 for pe, ae in zip(p_enc, a_enc)]
    width = max(lens)
    ids = np.zeros((len(examples), width), dtype=np.int32)
    labels = np.full((len(examples), width), -100, dtype=np.int32)
    for i, (pe, ae) in enumerate(zip(p_enc, a_enc)):
        seq = pe.ids + ae.ids + [eos]
        ids[i, :len(seq)] = seq
        labels[i, len(pe.ids):len(seq)] = seq[len(pe.ids):]
    return (torch.from_numpy(ids).to(device), torch.from_numpy(labels).to(device),
            torch.tensor(lens, dtype=torch.long))


@torch.no_grad()
def greedy_outputs(model, tk, prompts, device, max_new):
    """Batched greedy decoding (left padding, bf16 autocast, no cache): token ids up to and including eos."""
    was_training = model.training
    model.eval()
    eos = tk.token_to_id(tokmod.IM_END)
    prompts = [tk.encode(tokmod.render_chat_prompt(p), add_special_tokens=False).ids for p in prompts]
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    outs = [[] for _ in prompts]
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(max_new):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with autocast(device):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1]
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.zeros_like(nxt), nxt)
        for i, (t, d) in enumerate(zip(nxt.tolist(), done.tolist())):
            if not d:
                outs[i].append(t)
        done |= nxt == eos
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], dim=1)
        if bool(done.all()):
            break
    if was_training:
        model.train()
    return outs


def greedy_accuracy(model, tk, examples, device, max_new):
    """Exact-match accuracy of greedy_outputs: the training-time check."""
    eos = tk.token_to_id(tokmod.IM_END)
    outs = greedy_outputs(model, tk, [p for p, _ in examples], device, max_new)
    correct = 0
    for (p, a), o in zip(examples, outs):
        if o and o[-1] == eos and tk.decode(o[:-1], skip_special_tokens=False).strip() == a:
            correct += 1
    return correct / len(examples)


def train_adapter(args, S, device, tk, spec, time_budget):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    name = spec["name"]
    t0 = time.time()
    set_seeds(args.seed + 1 + [a["name"] for a in ADAPTERS].index(name))
    test, val = tasks.held_out(name, args.seed)
    exclude = {p for p, _ in test} | {p for p, _ in val}
    pool = tasks.training_pool(name, args.seed, S["adapter_pool"], exclude)
    ids, labels, lens = adapter_pool(tk, pool, device)
    n_distinct = len({p for p, _ in pool})
    max_new = max(len(tk.encode(a, add_special_tokens=False).ids) for _, a in val) + 2
    base_dir = os.path.join(args.out, "base")
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(device)
    lcfg = LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], target_modules=spec["targets"], lora_dropout=0.0,
                      bias="none", task_type="CAUSAL_LM", use_rslora=spec["rslora"],
                      rank_pattern=spec.get("rank_pattern", {}), alpha_pattern=spec.get("alpha_pattern", {}))
    model = get_peft_model(base, lcfg)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec["lr"], betas=(0.9, 0.999), weight_decay=0.0,
                            fused=(device == "cuda"))
    B = spec["batch"] if not args.tiny else 16
    gen = torch.Generator()
    gen.manual_seed(args.seed * 7919 + [a["name"] for a in ADAPTERS].index(name))
    m0, m1 = S["adapter_measure"]
    warmup = max(S["adapter_warmup"], m1)
    deadline = t0 + time_budget
    log(f"adapter {name}: r={spec['r']} alpha={spec['alpha']} rslora={spec['rslora']} "
        f"targets={','.join(spec['targets'])} {n_train / 1e3:.0f}k trainable; pool {len(pool)} "
        f"({n_distinct} distinct), batch {B}, lr {spec['lr']}, budget {time_budget:.0f}s "
        f"(setup {time.time() - t0:.1f}s)")
    model.train()
    step, total, t_m0, losses, checks = 0, None, None, [], []
    stop_reason = "planned steps done"
    t_train = time.time()
    while True:
        if total is not None and step >= total:
            break
        if time.time() > deadline + 5:
            stop_reason = "deadline"
            break
        lr = cosine_lr(step, spec["lr"], warmup, total)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(pool), (B,), generator=gen)
        width = int(lens[idx].max())
        idx_d = idx.to(device)
        x = ids[idx_d, :width].long()
        y = labels[idx_d, :width].long()
        # Right padding after the answer: causal attention never lets a real token see it, and its labels
        # are -100, so no attention mask is needed.
        with autocast(device):
            loss = model(input_ids=x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step == m0:
            sync(device)
            t_m0 = time.time()
        elif step == m1:
            sync(device)
            per_step = (time.time() - t_m0) / (m1 - m0)
            # Leave room for the validation checks (~5% of the time).
            total = m1 + max(0, int(0.95 * (deadline - time.time()) / per_step))
            total = max(total, warmup + 10)
            log(f"  {per_step * 1000:.1f} ms/step -> {total} steps planned")
        if step % S["adapter_eval_every"] == 0 or step == total:
            lv = loss.item()
            if not math.isfinite(lv):
                raise RuntimeError(f"adapter {name}: loss is {lv} at step {step}")
            acc = greedy_accuracy(model, tk, val, device, max_new)
            losses.append([step, round(lv, 4)])
            checks.append([step, acc])
            log(f"  step {step}/{total} loss {lv:.4f} lr {lr:.2e} validation exact match {acc:.1%} "
                f"({time.time() - t0:.0f}s)")
            if acc >= 0.99 and step >= S["adapter_min_steps"]:
                stop_reason = f"validation {acc:.1%} at step {step}"
                break
    train_s = time.time() - t_train
    if not checks or checks[-1][0] != step:
        acc = greedy_accuracy(model, tk, val, device, max_new)
        checks.append([step, acc])
    out_dir = os.path.join(args.out, "adapters", name)
    model.save_pretrained(out_dir)
    cfg_path = os.path.join(out_dir, "adapter_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "models/demo/base"
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])  # peft writes a set in hash order
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    card = os.path.join(out_dir, "README.md")  # peft's empty model-card template
    if os.path.exists(card):
        os.remove(card)
    total_s = time.time() - t0
    log(f"adapter {name}: {step} steps in {train_s:.0f}s ({stop_reason}), validation {checks[-1][1]:.1%}; "
        f"saved to {out_dir}")
    LOG.setdefault("adapters", {})[name] = {
        "task": tasks.TASKS[name]["about"], "r": spec["r"], "lora_alpha": spec["alpha"],
        "target_modules": spec["targets"], "use_rslora": spec["rslora"],
        "rank_pattern": spec.get("rank_pattern", {}), "alpha_pattern": spec.get("alpha_pattern", {}),
        "trainable_parameters": n_train, "lr": spec["lr"], "batch": B, "warmup": warmup, "steps": step,
        "planned_steps": total, "stop": stop_reason, "train_seconds": round(train_s, 1),
        "seconds": round(total_s, 1), "pool": len(pool), "pool_distinct": n_distinct,
        "losses": losses, "validation": checks, "validation_prompts": len(val),
        "example": {"prompt": val[0][0], "answer": val[0][1]},
    }
    del model, base, opt, ids, labels
    if device == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- main


def apply_overrides(items):
    """--set NAME.KEY=VALUE: change one adapter's recipe (r, alpha, lr, batch, weight, rslora, targets)."""
    by_name = {a["name"]: a for a in ADAPTERS}
    for item in items:
        key, _, value = item.partition("=")
        name, _, field = key.partition(".")
        if name not in by_name or not value:
            raise SystemExit(f"--set {item}: expected NAME.KEY=VALUE with NAME in {sorted(by_name)}")
        spec = by_name[name]
        if field in ("r", "alpha", "batch"):
            spec[field] = int(value)
        elif field in ("lr", "weight"):
            spec[field] = float(value)
        elif field == "rslora":
            spec[field] = value.lower() in ("1", "true", "yes")
        elif field == "targets":
            spec[field] = {"all-linear": ALL_LINEAR, "attention": ATTENTION}.get(value, value.split(","))
            spec.pop("rank_pattern", None)
            spec.pop("alpha_pattern", None)
        else:
            raise SystemExit(f"--set {item}: unknown field {field}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (models/demo)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=7.0, help="wall-clock budget of the whole run")
    ap.add_argument("--tiny", action="store_true", help="toy sizes for a CPU smoke test")
    ap.add_argument("--pack", default=None, help="also write the output as DIR/demo.tar.NN after every stage")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--adapters-only", nargs="*", default=None, metavar="NAME",
                    help="keep OUT/base and OUT/train_log.json, retrain only these adapters (all if none "
                         "named), then evaluate every adapter")
    ap.add_argument("--set", action="append", default=[], metavar="NAME.KEY=VALUE",
                    help="override an adapter's recipe, e.g. calc.lr=3e-3 or reverse.targets=all-linear")
    args = ap.parse_args()
    apply_overrides(args.set)
    S = TINY if args.tiny else FULL
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cuda" and not args.tiny:
        sys.exit("the full run needs a CUDA GPU (use --tiny for a CPU smoke test)")
    import peft
    import tokenizers
    import transformers
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    os.makedirs(args.out, exist_ok=True)
    set_seeds(args.seed)
    if device == "cuda":
        torch.set_float32_matmul_precision("high")
    cmd = ["python3", "tools/demo_model/train.py", "--out", "models/demo" if not args.tiny else args.out,
           "--seed", str(args.seed), "--minutes", f"{args.minutes:g}"] + (["--tiny"] if args.tiny else [])
    cmd += [f"--set {x}" for x in args.set]
    if args.adapters_only is not None:
        cmd += ["--adapters-only"] + args.adapters_only
    run = {
        "command": " ".join(cmd), "seed": args.seed, "minutes": args.minutes, "tiny": args.tiny,
        "budget_fractions": BUDGET, "sizes": S,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv,
    }
    retrain = args.adapters_only is not None
    if retrain:
        with open(os.path.join(args.out, "train_log.json")) as f:
            LOG.update(json.load(f))
        LOG.pop("finished", None)
        names = args.adapters_only or [a["name"] for a in ADAPTERS]
        LOG.setdefault("retrained", []).append(dict(run, adapters=names, overrides=args.set))
    else:
        LOG.update(run)
    log(f"device {run['device']}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"peft {peft.__version__}, tokenizers {tokenizers.__version__}; budget {args.minutes:g} min"
        + (" (TINY smoke test)" if args.tiny else "") + (" (adapters only)" if retrain else ""))

    if retrain:
        tk = tokenizers.Tokenizer.from_file(os.path.join(args.out, "base", "tokenizer.json"))
        todo = [a for a in ADAPTERS if a["name"] in names]
        if len(todo) != len(names):
            raise SystemExit(f"unknown adapter in {names}")
        adapters_end = T_START + 0.9 * args.minutes * 60
    else:
        tk, train_ids, val_ids = build_tokenizer(args, S)
        checkpoint(args)
        pretrain(args, S, device, tk, train_ids, val_ids)
        del train_ids
        t = time.time()
        base_samples(args, S, device)
        LOG["timings"]["samples_s"] = round(time.time() - t, 1)
        checkpoint(args)
        todo = ADAPTERS
        adapters_end = T_START + BUDGET["adapters_end"] * args.minutes * 60

    t_ad = time.time()
    for i, spec in enumerate(todo):
        share = spec["weight"] / sum(a["weight"] for a in todo[i:])
        budget = max(5.0, (adapters_end - time.time()) * share)
        train_adapter(args, S, device, tk, spec, budget)
        checkpoint(args)
    LOG.setdefault("timings", {})["adapters_s" if not retrain else "retrain_adapters_s"] = round(
        time.time() - t_ad, 1)

    import evaluate
    t = time.time()
    LOG["eval"] = evaluate.evaluate(args.out, [a["name"] for a in ADAPTERS], args.seed, device, log=log)
    LOG["timings"]["eval_s"] = round(time.time() - t, 1)
    if not retrain:
        LOG["timings"]["total_s"] = round(elapsed(), 1)
    else:
        LOG["retrained"][-1]["total_s"] = round(elapsed(), 1)
    print(flush=True)
    print(report.eval_table(LOG), flush=True)
    print(flush=True)
    LOG["sizes_bytes"] = report.sizes(args.out)
    LOG["finished"] = True
    checkpoint(args)
    total_mb = sum(LOG["sizes_bytes"].values()) / 1e6
    log(f"done: {args.out} is {total_mb:.1f} MB; total {elapsed() / 60:.2f} min")
    if total_mb > 40:
        log("WARNING: the output is over 40 MB")
    low = [n for n, e in LOG["eval"].items() if e["accuracy"] < 0.9 or e["base_accuracy"] >= 0.1]
    if low:
        log(f"WARNING: below target (adapter >= 90%, base < 10%): {', '.join(low)}")


if __name__ == "__main__":
    main()
