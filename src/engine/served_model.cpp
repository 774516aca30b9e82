// served_model.cpp: loading the served base model: backend, weights, tokenizer and chat template, end-of-
// sequence ids and generation_config.json defaults.
#include "engine/served_model.h"

#include <algorithm>
#include <filesystem>

#include "core/json.h"
#include "io/hub_cache.h"

namespace ls {
namespace {

Result<GenerationDefaults> read_generation_defaults(const std::string& dir) {
  GenerationDefaults d;
  auto json = read_json_file(dir + "/generation_config.json");
  if (!json.is_ok()) {
    if (json.status().code() == ErrorCode::kNotFound) return d;
    return json.status();
  }
  const Json& g = json.value();
  if (!g.is_object()) return invalid_argument("generation_config.json: not a JSON object");
  auto number = [&](const char* key, std::optional<float>& out) -> Status {
    if (!find_field(g, key)) return Status::ok();
    LS_ASSIGN_OR_RETURN(double v, required_number(g, key));
    out = static_cast<float>(v);
    return Status::ok();
  };
  auto integer = [&](const char* key, std::optional<int32_t>& out) -> Status {
    if (!find_field(g, key)) return Status::ok();
    LS_ASSIGN_OR_RETURN(int64_t v, required_int(g, key));
    out = static_cast<int32_t>(std::clamp<int64_t>(v, 0, INT32_MAX));
    return Status::ok();
  };
  LS_RETURN_IF_ERROR(number("temperature", d.temperature).with_context("generation_config.json"));
  LS_RETURN_IF_ERROR(number("top_p", d.top_p).with_context("generation_config.json"));
  LS_RETURN_IF_ERROR(number("min_p", d.min_p).with_context("generation_config.json"));
  LS_RETURN_IF_ERROR(number("repetition_penalty", d.repetition_penalty).with_context("generation_config.json"));
  LS_RETURN_IF_ERROR(integer("top_k", d.top_k).with_context("generation_config.json"));
  LS_RETURN_IF_ERROR(integer("max_new_tokens", d.max_new_tokens).with_context("generation_config.json"));
  // transformers ignores the sampling fields unless do_sample is true; vLLM reads them regardless.
  return d;
}

}  // namespace

const PromptCodec& ServedModel::codec() const {
  LS_CHECK(codec_) << "model " << dir_ << " has no tokenizer";
  return *codec_;
}

bool ServedModel::is_base_name(const std::string& name) const {
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

Result<std::unique_ptr<ServedModel>> ServedModel::load(const ServedModelOptions& options) {
  if (options.model.empty()) return invalid_argument("no model given");
  std::unique_ptr<ServedModel> m(new ServedModel());
  m->root_ = options.model;
  m->names_ = options.served_names;
  m->names_.erase(std::remove(m->names_.begin(), m->names_.end(), std::string()), m->names_.end());
  if (m->names_.empty()) m->names_.push_back(options.model);
  LS_ASSIGN_OR_RETURN(m->dir_, resolve_model_dir(options.model));
  LS_ASSIGN_OR_RETURN(m->backend_, make_backend(options.backend));
  LoadOptions load;
  if (options.load_format == "dummy") {
    load.dummy_weights = true;
  } else if (options.load_format != "safetensors" && options.load_format != "auto") {
    return invalid_argument("load format must be safetensors, auto or dummy, not \"" + options.load_format + "\"");
  }
  LS_ASSIGN_OR_RETURN(m->model_, Transformer::load(m->dir_, *m->backend_, load));
  std::string tokenizer_dir = m->dir_;
  if (!options.tokenizer.empty()) {
    LS_ASSIGN_OR_RETURN(tokenizer_dir, resolve_model_dir(options.tokenizer));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(tokenizer_dir + "/tokenizer.json", ec)) {
    LS_ASSIGN_OR_RETURN(PromptCodec codec, PromptCodec::load(tokenizer_dir));
    m->codec_ = std::make_unique<PromptCodec>(std::move(codec));
  } else if (!options.tokenizer.empty()) {
    return not_found("no tokenizer.json in " + tokenizer_dir);
  }
  m->eos_ids_ = eos_ids_from_configs(m->dir_);
  if (m->codec_)
    for (int64_t id : m->codec_->stop_ids())
      if (std::find(m->eos_ids_.begin(), m->eos_ids_.end(), id) == m->eos_ids_.end()) m->eos_ids_.push_back(id);
  for (int64_t id : m->model_->config().eos_token_ids)
    if (std::find(m->eos_ids_.begin(), m->eos_ids_.end(), id) == m->eos_ids_.end()) m->eos_ids_.push_back(id);
  LS_ASSIGN_OR_RETURN(m->defaults_, read_generation_defaults(m->dir_));
  return m;
}

}  // namespace ls
