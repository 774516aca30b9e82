// api_model.h: ApiModel, what request validation knows about the served model: its tokenizer and chat template,
// the names clients call it by, the limits both API families check against, generation_config.json defaults,
// and the adapters the engine knows. It resolves an OpenAI `model` (adapter name, Ray Serve's base:adapter, a
// base name, "" or TGI's "tgi") and a TGI/LoRAX adapter_id (+ adapter_source) to an engine adapter name.
// Built from the Engine in production and from a model directory's PromptCodec in tests.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/prompt_codec.h"
#include "engine/served_model.h"

namespace ls::server {

struct ApiLimits {
  int32_t max_model_len = 0;       // prompt + output tokens (vLLM's max_model_len)
  int32_t max_input_tokens = 0;    // TGI: prompt tokens (max_model_len - 1 unless set)
  int32_t max_total_tokens = 0;    // TGI: prompt + max_new_tokens (max_model_len unless set)
  int32_t max_best_of = 2;         // TGI best_of
  int32_t max_stop_sequences = 4;  // TGI stop; OpenAI stop lists get 4x this
  int32_t max_top_n_tokens = 5;    // TGI top_n_tokens, LoRAX return_k_alternatives
  int32_t max_logprobs = 20;       // OpenAI logprobs / top_logprobs / prompt_logprobs
  int32_t max_n = 16;              // OpenAI n and best_of
  int32_t max_prompts = 64;        // OpenAI prompt lists (and TGI max_client_batch_size in /info)
  int64_t vocab_size = 0;          // token ids in requests are below this (0: unchecked in the schema)
};

// How an engine request names its adapter (EngineRequest::adapter and ::adapter_source).
struct AdapterRef {
  std::string name;    // "" = the base model
  std::string source;  // "" (a name the engine knows: registered, under --adapter-dir, a cached Hub id), or
                       // LoRAX's "local" / "s3" (a path or URL inside a root)
};

class ApiModel {
 public:
  const PromptCodec* codec = nullptr;
  std::vector<std::string> names;  // served names; names[0] is the id
  std::string root;                // the model as given on the command line
  std::string compute_type = "cpu";  // TGI's x-compute-type header ("cpu", "cuda")
  ApiLimits limits;
  GenerationDefaults defaults;
  std::function<bool(const std::string&)> has_adapter;
  std::function<std::vector<AdapterInfo>()> adapters;

  const Tokenizer& tokenizer() const { return codec->tokenizer(); }
  const std::string& id() const { return names.front(); }
  bool is_base_name(const std::string& name) const;

  // TGI/LoRAX: adapter_id null, "" or "__base_model__" is the base; otherwise an adapter the engine knows by
  // that name (or Hub id), a registered one by the Hub id or (adapter_source "local") the directory it was
  // loaded from, or any other "local" path or "s3" URL, which the engine resolves inside its --adapter-dir
  // roots. Other sources (pbase) are kUnsupported; an unknown name is kNotFound.
  Result<AdapterRef> resolve_adapter_id(const std::optional<std::string>& adapter_id,
                                        const std::optional<std::string>& adapter_source) const;
  // OpenAI: absent, "", "tgi" or a served name is the base (""); an adapter by name or as base:adapter;
  // anything else kNotFound with vLLM's message.
  Result<std::string> resolve_model(const std::optional<std::string>& model) const;
  // The `model` field of a response: the adapter name (or the client's base:adapter spelling), else the id.
  std::string response_model_name(const std::optional<std::string>& requested, const std::string& adapter) const;
};

}  // namespace ls::server
