// cmd_model.cpp: the `logits` and `generate` subcommands: load a base model (and optionally one PEFT adapter)
// on a backend and run one token sequence. Output is JSON on stdout; any failure is one line on stderr and a
// non-zero exit.
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "core/json.h"
#include "engine/generate.h"
#include "io/hub_cache.h"
#include "lora/lora_slots.h"
#include "model/single_sequence.h"

namespace ls::app {
namespace {

struct ModelArgs {
  std::string model;
  std::string adapter;
  std::string tokens;
  std::string prompt;
  bool chat = false;
  bool ignore_eos = false;
  std::string device = "cpu";
  std::string cpu_weights = "f32";
  std::string load_format = "safetensors";
  int32_t max_new_tokens = 16;
  bool stop_at_eos = false;
  int64_t max_model_len = 0;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  int64_t seed = -1;
};

Result<std::vector<int32_t>> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  if (text.empty()) return invalid_argument("--tokens is empty");
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string_view item(text.data() + pos, comma - pos);
    int64_t value = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || value < 0 || value > INT32_MAX)
      return invalid_argument("--tokens: \"" + std::string(item) + "\" is not a token id (comma-separated integers >= 0)");
    ids.push_back(static_cast<int32_t>(value));
    pos = comma + 1;
  }
  return ids;
}

int fail(const Status& status) {
  std::fprintf(stderr, "loraserve: %s\n", status.to_string().c_str());
  return 1;
}

Result<std::unique_ptr<ServedModel>> load_model(const ModelArgs& args) {
  ServedModelOptions o;
  o.model = args.model;
  o.backend.device = args.device;
  o.backend.cpu_weights = args.cpu_weights;
  o.load_format = args.load_format;
  return ServedModel::load(o);
}

// The context limit: --max-model-len, else the model's max_position_embeddings.
int64_t context_limit(const ModelArgs& args, const ModelConfig& config) {
  return args.max_model_len > 0 ? args.max_model_len : config.max_position_embeddings;
}

int run_logits(const ModelArgs& args) {
  if (args.tokens.empty()) return fail(invalid_argument("--tokens is required"));
  auto tokens = parse_token_list(args.tokens);
  if (!tokens.is_ok()) return fail(tokens.status());
  auto served = load_model(args);
  if (!served.is_ok()) return fail(served.status());
  ServedModel& m = **served;
  const int64_t limit = context_limit(args, m.config());
  if (static_cast<int64_t>(tokens->size()) > limit)
    return fail(invalid_argument(std::to_string(tokens->size()) + " tokens exceed the context limit of " +
                                 std::to_string(limit) + " (--max-model-len)"));
  SequenceOptions o;
  std::unique_ptr<LoraSlots> slots;
  if (!args.adapter.empty()) {
    auto dir = resolve_model_dir(args.adapter);
    if (!dir.is_ok()) return fail(dir.status());
    auto adapter = load_lora_adapter(dir.value(), m.config());
    if (!adapter.is_ok()) return fail(adapter.status());
    auto created = LoraSlots::create(m.backend(), m.config(), 1);
    if (!created.is_ok()) return fail(created.status());
    slots = std::make_unique<LoraSlots>(std::move(created).value());
    if (Status s = slots->load(0, adapter.value()); !s.is_ok()) return fail(s);
    o.lora = slots.get();
    o.lora_slot = 0;
  }
  auto rows = sequence_logits(m.model(), tokens.value(), o);
  if (!rows.is_ok()) return fail(rows.status());
  Json out = {{"logits", rows.value()}};
  std::cout << out.dump() << "\n";
  return 0;
}

// Token ids from --tokens, or from --prompt through the model's tokenizer (and chat template with --chat).
Result<std::vector<int32_t>> input_tokens(const ModelArgs& args, const ServedModel& m) {
  if (args.prompt.empty() == args.tokens.empty()) return invalid_argument("give exactly one of --tokens and --prompt");
  if (args.prompt.empty()) return parse_token_list(args.tokens);
  if (!m.has_tokenizer()) return not_found("the model has no tokenizer.json; give --tokens");
  return m.codec().encode(args.prompt, args.chat);
}

// One request through the serving engine (the same step, scheduler and sampler the server runs), with a KV
// pool sized for it.
int run_generate(const ModelArgs& args) {
  if (args.chat && args.prompt.empty()) return fail(invalid_argument("--chat needs --prompt"));
  auto served = load_model(args);
  if (!served.is_ok()) return fail(served.status());
  ServedModel& m = **served;
  auto tokens = input_tokens(args, m);
  if (!tokens.is_ok()) return fail(tokens.status());
  const int64_t limit = context_limit(args, m.config());
  const int64_t total = static_cast<int64_t>(tokens->size()) + args.max_new_tokens;
  if (total > limit)
    return fail(invalid_argument("the prompt's " + std::to_string(tokens->size()) + " tokens and " +
                                 std::to_string(args.max_new_tokens) + " new tokens exceed the context limit of " +
                                 std::to_string(limit) + " (--max-model-len)"));
  if (args.max_new_tokens == 0) {  // nothing to generate
    std::cout << Json{{"tokens", Json::array()}}.dump() << "\n";
    return 0;
  }
  EngineOptions eo;
  eo.max_num_seqs = 1;
  eo.max_loras = 1;
  eo.max_model_len = static_cast<int32_t>(limit);
  const int64_t blocks = (limit + eo.block_size - 1) / eo.block_size;
  eo.kv_cache_bytes = blocks * static_cast<int64_t>(KvCache::bytes_per_block(m.config(), eo.block_size,
                                                                             m.backend().compute_dtype()));
  auto engine = Engine::create(m, eo);
  if (!engine.is_ok()) return fail(engine.status());
  EngineRequest request;
  request.prompt = std::move(tokens).value();
  if (!args.adapter.empty()) {
    if (Status s = (*engine)->add_adapter("adapter", args.adapter); !s.is_ok()) return fail(s);
    request.adapter = "adapter";
  }
  // Token-id mode continues for exactly --max-new-tokens tokens (the oracle's paths run through end-of-sequence)
  // unless --stop-at-eos; prompt mode stops at end-of-sequence as text generation does, unless --ignore-eos.
  GenerationParams& p = request.params;
  p.stop.max_new_tokens = args.max_new_tokens;
  p.stop.ignore_eos = args.prompt.empty() ? !args.stop_at_eos : args.ignore_eos;
  p.sampling.temperature = args.temperature;
  p.sampling.top_p = args.top_p;
  p.sampling.top_k = args.top_k;
  if (args.seed >= 0) p.seed = static_cast<uint64_t>(args.seed);
  (*engine)->start();
  std::vector<EngineRequest> requests;
  requests.push_back(std::move(request));
  auto generated = generate_all(**engine, std::move(requests));
  (*engine)->shutdown(0);
  if (!generated.is_ok()) return fail(generated.status());
  const Generation& g = generated->front();
  if (g.reason == FinishReason::kError) return fail(g.error);
  Json out = {{"tokens", g.tokens}};
  if (!args.prompt.empty()) out["text"] = g.text;
  out["finish_reason"] = finish_reason_name(g.reason);
  std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  return 0;
}

void add_common_options(CLI::App* cmd, ModelArgs& args) {
  cmd->add_option("--model", args.model, "model directory or Hub repo id in the local Hub cache")->required();
  cmd->add_option("--adapter", args.adapter, "PEFT LoRA adapter directory");
  cmd->add_option("--tokens", args.tokens, "comma-separated token ids");
  cmd->add_option("--device", args.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--cpu-weights", args.cpu_weights,
                  "cpu weight storage: f32 (default, the reference), bf16 (fp16 checkpoints stay fp16) or int8")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  cmd->add_option("--load-format", args.load_format, "safetensors (default) or dummy (random weights)");
  cmd->add_option("--max-model-len", args.max_model_len, "context limit (default: the model's max_position_embeddings)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
}

}  // namespace

void register_model_commands(CLI::App& app, CommandRunner& runner) {
  static ModelArgs args;
  CLI::App* logits = app.add_subcommand("logits", "print the logits of every position as JSON");
  add_common_options(logits, args);
  logits->callback([&runner] { runner = [] { return run_logits(args); }; });

  CLI::App* generate = app.add_subcommand("generate", "print the greedy continuation as JSON");
  add_common_options(generate, args);
  generate->add_option("--max-new-tokens", args.max_new_tokens, "tokens to generate")->check(CLI::Range(0, 1 << 20));
  generate->add_option("--prompt", args.prompt, "text prompt, tokenized with the model's tokenizer.json");
  generate->add_flag("--chat", args.chat, "wrap --prompt as a user message in the model's chat template");
  generate->add_flag("--stop-at-eos", args.stop_at_eos, "with --tokens: stop after an end-of-sequence token");
  generate->add_flag("--ignore-eos", args.ignore_eos, "with --prompt: do not stop at end-of-sequence tokens");
  generate->add_option("--temperature", args.temperature, "sampling temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  generate->add_option("--top-p", args.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  generate->add_option("--top-k", args.top_k, "sample among the k most likely tokens (0: all)")->check(CLI::Range(0, 1 << 30));
  generate->add_option("--seed", args.seed, "sampling seed (default: random)")->check(CLI::Range(int64_t{0}, INT64_MAX));
  generate->callback([&runner] { runner = [] { return run_generate(args); }; });
}

}  // namespace ls::app
