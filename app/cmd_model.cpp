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
#include "engine/prompt_codec.h"
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
  std::string load_format = "safetensors";
  int32_t max_new_tokens = 16;
  bool stop_at_eos = false;
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

// A loaded model with its optional adapter in slot 0.
struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<LoraSlots> lora;
  std::string dir;
  std::vector<int64_t> eos_ids;
  SequenceOptions options() const {
    SequenceOptions o;
    if (lora) {
      o.lora = lora.get();
      o.lora_slot = 0;
    }
    return o;
  }
};

std::vector<int64_t> stop_ids_of(const std::string& dir, const ModelConfig& config) {
  std::vector<int64_t> ids = config.eos_token_ids;
  auto gen = read_json_file(dir + "/generation_config.json");
  if (!gen.is_ok()) return ids;
  if (const Json* eos = find_field(gen.value(), "eos_token_id")) {
    std::vector<Json> values = eos->is_array() ? eos->get<std::vector<Json>>() : std::vector<Json>{*eos};
    for (const Json& v : values)
      if (v.is_number_integer() && std::find(ids.begin(), ids.end(), v.get<int64_t>()) == ids.end())
        ids.push_back(v.get<int64_t>());
  }
  return ids;
}

Result<LoadedModel> load(const ModelArgs& args) {
  LoadedModel m;
  LS_ASSIGN_OR_RETURN(m.backend, make_backend(args.device));
  LS_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(args.model));
  LoadOptions options;
  if (args.load_format == "dummy") {
    options.dummy_weights = true;
  } else if (args.load_format != "safetensors" && args.load_format != "auto") {
    return invalid_argument("--load-format must be safetensors, auto or dummy");
  }
  LS_ASSIGN_OR_RETURN(m.model, Transformer::load(dir, *m.backend, options));
  m.dir = dir;
  m.eos_ids = stop_ids_of(dir, m.model->config());
  if (!args.adapter.empty()) {
    LS_ASSIGN_OR_RETURN(std::string adapter_dir, resolve_model_dir(args.adapter));
    LS_ASSIGN_OR_RETURN(LoraAdapter adapter, load_lora_adapter(adapter_dir, m.model->config()));
    LS_ASSIGN_OR_RETURN(LoraSlots slots, LoraSlots::create(*m.backend, m.model->config(), 1));
    m.lora = std::make_unique<LoraSlots>(std::move(slots));
    LS_RETURN_IF_ERROR(m.lora->load(0, adapter));
  }
  return m;
}

int fail(const Status& status) {
  std::fprintf(stderr, "loraserve: %s\n", status.to_string().c_str());
  return 1;
}

int run_logits(const ModelArgs& args) {
  if (args.tokens.empty()) return fail(invalid_argument("--tokens is required"));
  auto tokens = parse_token_list(args.tokens);
  if (!tokens.is_ok()) return fail(tokens.status());
  auto loaded = load(args);
  if (!loaded.is_ok()) return fail(loaded.status());
  auto rows = sequence_logits(*loaded->model, tokens.value(), loaded->options());
  if (!rows.is_ok()) return fail(rows.status());
  Json out = {{"logits", rows.value()}};
  std::cout << out.dump() << "\n";
  return 0;
}

// Token ids from --tokens, or from --prompt through the model's tokenizer (and chat template with --chat).
Result<std::vector<int32_t>> input_tokens(const ModelArgs& args, const std::optional<PromptCodec>& codec) {
  if (args.prompt.empty() == args.tokens.empty()) return invalid_argument("give exactly one of --tokens and --prompt");
  if (!codec) return parse_token_list(args.tokens);
  return codec->encode(args.prompt, args.chat);
}

int run_generate(const ModelArgs& args) {
  if (args.chat && args.prompt.empty()) return fail(invalid_argument("--chat needs --prompt"));
  auto loaded = load(args);
  if (!loaded.is_ok()) return fail(loaded.status());
  std::optional<PromptCodec> codec;
  if (!args.prompt.empty()) {
    auto c = PromptCodec::load(loaded->dir);
    if (!c.is_ok()) return fail(c.status());
    codec = std::move(c).value();
  }
  auto tokens = input_tokens(args, codec);
  if (!tokens.is_ok()) return fail(tokens.status());
  // Token-id mode continues for exactly --max-new-tokens tokens (the oracle's paths run through end-of-sequence)
  // unless --stop-at-eos; prompt mode stops at end-of-sequence as text generation does, unless --ignore-eos.
  const bool stop = codec ? !args.ignore_eos : args.stop_at_eos;
  const std::vector<int64_t> stops = !stop ? std::vector<int64_t>{} : codec ? codec->stop_ids() : loaded->eos_ids;
  auto generated = greedy_generate(*loaded->model, tokens.value(), args.max_new_tokens, stops, loaded->options());
  if (!generated.is_ok()) return fail(generated.status());
  Json out = {{"tokens", generated.value()}};
  if (codec) {
    auto text = codec->decode(generated.value());
    if (!text.is_ok()) return fail(text.status());
    out["text"] = text.value();
  }
  std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  return 0;
}

void add_common_options(CLI::App* cmd, ModelArgs& args) {
  cmd->add_option("--model", args.model, "model directory or Hub repo id in the local Hub cache")->required();
  cmd->add_option("--adapter", args.adapter, "PEFT LoRA adapter directory");
  cmd->add_option("--tokens", args.tokens, "comma-separated token ids");
  cmd->add_option("--device", args.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--load-format", args.load_format, "safetensors (default) or dummy (random weights)");
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
  generate->callback([&runner] { runner = [] { return run_generate(args); }; });
}

}  // namespace ls::app
