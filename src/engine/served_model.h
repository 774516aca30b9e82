// served_model.h: ServedModel, the base model a server (or the CLI) runs: its backend, weights, tokenizer and
// chat template (PromptCodec), end-of-sequence ids, generation_config.json defaults, and the names clients
// call it by. Loaded once at start-up; read-only afterwards, so any thread may use codec() and the accessors.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/prompt_codec.h"
#include "model/transformer.h"

namespace ls {

struct ServedModelOptions {
  std::string model;                        // a directory, or a Hub repo id in the local cache (org/name[@rev])
  std::string tokenizer;                    // where tokenizer.json and the chat template live ("" = the model's)
  std::vector<std::string> served_names;    // names clients use for the base model ("" = {model as given})
  BackendOptions backend;
  std::string load_format = "safetensors";  // or "dummy": seeded random weights of the config's shapes
};

// generation_config.json's sampling defaults (vLLM applies these on its OpenAI routes when a request leaves
// the field out; TGI does not).
struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k, max_new_tokens;
};

class ServedModel {
 public:
  static Result<std::unique_ptr<ServedModel>> load(const ServedModelOptions& options);

  const std::string& id() const { return names_.front(); }       // the first served name
  const std::vector<std::string>& names() const { return names_; }
  bool is_base_name(const std::string& name) const;
  const std::string& root() const { return root_; }               // --model as given (vLLM's `root`)
  const std::string& dir() const { return dir_; }                 // the resolved model directory
  Backend& backend() const { return *backend_; }
  Transformer& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  // Whether the model has a tokenizer (tokenizer.json); a server needs one, token-id generation does not.
  bool has_tokenizer() const { return codec_ != nullptr; }
  const PromptCodec& codec() const;
  const Tokenizer& tokenizer() const { return codec().tokenizer(); }
  // End-of-sequence ids: config.json, generation_config.json and the tokenizer's eos_token.
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }
  const GenerationDefaults& generation_defaults() const { return defaults_; }

 private:
  ServedModel() = default;
  std::vector<std::string> names_;
  std::string root_, dir_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<PromptCodec> codec_;
  GenerationDefaults defaults_;
  std::vector<int64_t> eos_ids_;
};

}  // namespace ls
