// openai_request.h: the OpenAI requests as vLLM implements them (interfaces.md 3.4, 3.5): POST /v1/completions
// and /v1/chat/completions parsed and validated with vLLM's rules and messages (sampling ranges, stop,
// logprobs, n/best_of, stream_options, the context-length check), generation_config.json defaults for fields
// left out, and the engine requests they become. Unknown fields are accepted (vLLM extra="allow"); features
// this server does not implement (guided decoding, json response formats, tool parsing, logit_bias, beam
// search, suffix) are refused with a 400 that says so.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/api_model.h"
#include "server/json_fields.h"

namespace ls::server {

enum class OpenAiKind { kCompletion, kChat };

struct OpenAiRequest {
  OpenAiKind kind = OpenAiKind::kCompletion;
  std::optional<std::string> model_requested;
  std::string adapter;                       // engine name ("" = base)
  std::string adapter_source;                // EngineRequest::adapter_source ("" or LoRAX's "local")
  std::string model_name;                    // the response's `model`
  std::vector<std::vector<int32_t>> prompts; // completions: one per prompt; chat: exactly one
  std::vector<std::string> echo_texts;       // per prompt: the text `echo` prepends ("" without echo)
  int32_t n = 1;
  int32_t best_of = 1;                       // sequences generated per prompt; the n best are returned
  bool stream = false;
  bool include_usage = false;                // stream_options.include_usage
  bool continuous_usage = false;             // stream_options.continuous_usage_stats
  bool echo = false;
  int32_t logprobs = -1;                     // -1: none; else top-N alternatives per token (0: chosen only)
  bool return_tokens_as_token_ids = false;
  GenerationParams params;
  std::string templated_text;                // chat: the rendered prompt (for /chat_tokenize)
};

// Parses /v1/completions. Model resolution failures are kNotFound (404, param "model").
Result<OpenAiRequest> parse_completion_request(const OJson& body, const ApiModel& model);
// Parses /v1/chat/completions (renders the chat template and tokenizes the result).
Result<OpenAiRequest> parse_chat_request(const OJson& body, const ApiModel& model);

// Engine requests: prompts x best_of, in that order (sequence index = prompt * best_of + i). With a seed,
// sequence i gets seed + i so the n choices differ but stay reproducible.
std::vector<EngineRequest> openai_engine_requests(const OpenAiRequest& request);

// Shared by both routes (openai_request.cpp): the sampling, stop and logprob fields, and max_tokens against
// the context length once the prompt length is known.
Status parse_openai_sampling(const Fields& f, const ApiModel& model, OpenAiRequest& r);
Status resolve_max_tokens(const Fields& f, const ApiModel& model, OpenAiRequest& r, int64_t prompt_len);
Status parse_openai_common(const Fields& f, const ApiModel& model, OpenAiRequest& r);

}  // namespace ls::server
