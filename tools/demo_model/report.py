"""models/demo/README.md, written from the training log after every stage."""

import os

import tasks


def sizes(out):
    res = {}
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            res[os.path.relpath(full, out)] = os.path.getsize(full)
    return res


def eval_table(log):
    ev = log.get("eval")
    if not ev:
        return "(not evaluated yet)"
    rows = ["| adapter | adapter accuracy | base accuracy | prompts | max_new_tokens | smallest logit margin |",
            "| --- | --- | --- | --- | --- | --- |"]
    for name, e in ev.items():
        rows.append(f"| {name} | {e['accuracy']:.0%} | {e['base_accuracy']:.0%} | 50 | {e['max_new_tokens']} | "
                    f"{e['min_margin']:.4f} |")
    return "\n".join(rows)


def _md(text):
    return text.replace("|", "\\|").replace("\n", "\\n")


def write_readme(out, log):
    L = []
    w = L.append
    tiny = log.get("tiny")
    w("# models/demo: a small Llama base with four task adapters")
    w("")
    if tiny:
        w("**This is a --tiny smoke-test output (toy sizes, CPU). It is not the demo model.**")
        w("")
    if not log.get("finished"):
        w("**This run had not finished when this file was written: parts below are missing.**")
        w("")
    w("Everything here was written by `tools/demo_model/train.py` in one run: the tokenizer, the base model, "
      "the adapters, the reference outputs in `eval/` and this file. `train_log.json` holds the same facts "
      "in machine-readable form (timings, losses, accuracies).")
    w("")
    w("## How it was made")
    w("")
    w(f"- Command: `{log.get('command')}` (seed {log.get('seed')}, a wall-clock budget of "
      f"{log.get('minutes')} minutes).")
    tm = log.get("timings", {})
    total = tm.get("total_s") or log.get("elapsed_s")
    w(f"- Machine: {log.get('device')}; " + ", ".join(f"{k} {v}" for k, v in log.get("versions", {}).items())
      + f"; started {log.get('started')}.")
    if total:
        w(f"- Wall time on that machine, measured by the script: {total / 60:.2f} minutes in all "
          f"(data and tokenizer {tm.get('data_and_tokenizer_s')} s, pretraining {tm.get('pretrain_s')} s, "
          f"base samples {tm.get('samples_s')} s, adapters {tm.get('adapters_s')} s, "
          f"evaluation {tm.get('eval_s')} s).")
    for rt in log.get("retrained", []):
        w(f"- Then, adapters {', '.join(rt['adapters'])} retrained from this base: `{rt['command']}` "
          f"({rt.get('total_s', '?')} s).")
    d = log.get("data")
    if d:
        w(f"- Pretraining text: the Python sources (with their docstrings) and the .md/.rst/.txt/METADATA "
          f"documentation of the training machine's Python standard library and installed packages "
          f"(found with `sysconfig.get_paths()` and `site.getsitepackages()`): {d['files']} files, "
          f"{d['chars'] / 1e6:.1f} MB, from {d['packages']} top-level packages (no package more than 12% of "
          f"the text; largest: " + ", ".join(f"{k.split(':', 1)[1]}" for k in d["largest_packages_chars"])
          + "). Files are keyed by their path relative to the stdlib or site-packages folder, sorted, "
          "shuffled with the seed and taken until the cap; test folders, licences and files over 256 KiB "
          f"or with long generated lines are skipped. {d['val_files']} of the files are held out for a "
          f"validation loss. {d['train_tokens'] / 1e6:.1f}M training tokens. Nothing was downloaded and none "
          "of this text is in the repository.")
    w("")
    w("## Tokenizer")
    w("")
    if d:
        w(f"Byte-level BPE trained with Hugging Face `tokenizers` on {d['tokenizer_train_chars'] / 1e6:.1f} MB "
          f"of that text, vocabulary {d['tokenizer_vocab']}. Pre-tokenizer: `Sequence[Digits(individual_digits="
          "True), ByteLevel(add_prefix_space=False, use_regex=True)]` (every digit is its own token, so "
          "arithmetic is learnable); decoder ByteLevel; no normalizer, no post-processor (no BOS is added).")
    w("Special added tokens: `<|endoftext|>` = 0 (pad, document separator in pretraining), `<|im_start|>` = 1, "
      "`<|im_end|>` = 2 (eos). `tokenizer_config.json` carries a ChatML `chat_template`: each message is "
      "`<|im_start|>{role}\\n{content}<|im_end|>\\n`; `add_generation_prompt` appends "
      "`<|im_start|>assistant\\n`. No default system message.")
    w("")
    m = log.get("model")
    if m:
        c = m["config"]
        w("## Base model (`base/`)")
        w("")
        w(f"`LlamaForCausalLM`, {m['parameters'] / 1e6:.2f}M parameters, stored in bfloat16 "
          f"(`model.safetensors`). Tied embeddings: the output projection is the embedding matrix "
          f"({m['embedding_parameters'] / 1e6:.2f}M parameters), so there is no `lm_head.weight` tensor.")
        w("")
        w("| setting | value |")
        w("| --- | --- |")
        for k in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "rope_parameters",
                  "max_position_embeddings", "tie_word_embeddings", "eos_token_id", "pad_token_id",
                  "bos_token_id"]:
            w(f"| {k} | {c.get(k)} |")
        w("")
    p = log.get("pretrain")
    if p and "steps" in p:
        w(f"Pretraining: {p['steps']} steps of {p['batch']} x {p['seq']} tokens ({p['tokens'] / 1e6:.0f}M "
          f"tokens, random windows of the concatenated documents) in {p['seconds']:.0f} s, "
          f"{p['tokens_per_s'] / 1e6:.2f}M tokens/s; AdamW (betas {p['betas']}, weight decay "
          f"{p['weight_decay']} on matrices), peak lr {p['peak_lr']}, {p['warmup']} warmup steps then cosine "
          f"to {p['final_lr_fraction']:.0%}, gradient clipping {p['grad_clip']}, bf16 autocast over float32 "
          f"master weights. The step count was fixed after timing the first steps (budget / step time) and "
          f"the schedule depends only on it, so the run is repeatable from the seed and the step count "
          f"({p['steps']}) up to GPU non-determinism. Final training loss {p['train_loss_final']}, "
          f"validation loss {p['val_loss']} (nats/token).")
        w("")
    s = log.get("base_samples")
    if s:
        w(f"Samples from the base ({s['how']}):")
        w("")
        for t in s["texts"]:
            w("````")
            w(t)
            w("````")
        w("")
    ad = log.get("adapters")
    if ad:
        w("## Adapters (`adapters/NAME/`)")
        w("")
        w("PEFT LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`, float32 weights), "
          "trained with peft against the saved bf16 base (upcast to float32, bf16 autocast) on synthetic "
          "prompts sent through the chat template: the user message is the task prompt, the assistant "
          "message the answer, and the loss covers only the answer and its `<|im_end|>`. The 50 test and "
          "128 validation prompts of each task are drawn first from their own seeded generators and never "
          "trained on. Training stops at its time share or once the validation prompts are 99% right.")
        w("")
        w("| adapter | what it does | example prompt | answer | r | lora_alpha | target modules | rsLoRA | "
          "patterns | steps | seconds | validation |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, a in ad.items():
            pat = []
            if a["rank_pattern"]:
                pat.append(f"rank_pattern {a['rank_pattern']}")
            if a["alpha_pattern"]:
                pat.append(f"alpha_pattern {a['alpha_pattern']}")
            w(f"| {name} | {_md(a['task'])} | `{_md(a['example']['prompt'])}` | `{_md(a['example']['answer'])}` | "
              f"{a['r']} | {a['lora_alpha']} | {', '.join(a['target_modules'])} | {a['use_rslora']} | "
              f"{'; '.join(pat) or '-'} | {a['steps']} | {a['train_seconds']:.0f} | {a['validation'][-1][1]:.0%} |")
        w("")
        if "sql" in ad:
            w(f"The `sql` schema: {tasks.SQL_SCHEMA}.")
            w("")
    if log.get("eval"):
        w("## Evaluation (`eval/NAME.json`)")
        w("")
        w("Reference outputs for our engine. For each adapter, the 50 held-out test prompts are run through "
          "transformers + peft with the saved files upcast to float32 (eager attention, no TF32), greedy, "
          "stopping at `<|im_end|>`, once with the adapter and once with the bare base. An answer is correct "
          "when the output ends with `<|im_end|>` and its text, stripped, equals the expected answer.")
        w("")
        w(eval_table(log))
        w("")
        w("Each file holds the settings (`stop_token_ids`, `max_new_tokens`, versions) and, per prompt: "
          "`prompt` (the user message), `chat_text` and `prompt_ids` (after the chat template, with the "
          "generation prompt), `expected`, and for `adapter` and `base`: `ids` (greedy output token ids, up to "
          "and including `<|im_end|>` when it came), `text` (their decoding without that final eos), "
          "`correct`, `finished`, and `min_margin`, the smallest gap between the top two logits along the "
          "output (a near-zero gap marks a near-tie that another float32 implementation may break the other "
          "way). Outputs were decoded in a left-padded batch and checked against an unpadded teacher-forced "
          "pass; any disagreement was decoded again alone (`decoded_unbatched`).")
        w("")
        for name, e in log["eval"].items():
            ex = e["example"]
            w(f"- `{name}`: `{_md(ex['prompt'])}` -> adapter `{_md(ex['adapter'])}`; base "
              f"`{_md(ex['base'][:80])}`")
        w("")
    sz = log.get("sizes_bytes")
    if sz:
        w("## Files")
        w("")
        w(f"{sum(sz.values()) / 1e6:.1f} MB in all.")
        w("")
        w("| file | bytes |")
        w("| --- | --- |")
        for k, v in sz.items():
            w(f"| {k} | {v} |")
        w("")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(L))
