// tgi_request.h: the TGI/LoRAX generation request (POST /generate, /generate_stream, / and /invocations):
// parsing, TGI's validation rules and messages (interfaces.md 1.2, LoRAX's wider ranges in 2.1 where the two
// differ: temperature 0 means greedy, top_p and typical_p may be 1), TGI's do_sample semantics (1.8), and the
// engine requests it becomes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "server/api_model.h"
#include "server/json_fields.h"

namespace ls::server {

struct TgiRequest {
  std::string inputs;
  bool stream = false;
  std::optional<std::string> adapter_id, adapter_source;  // as the client gave them
  AdapterRef adapter;                                      // what the engine is asked for ("" = base)
  std::vector<int32_t> prompt;                             // after `truncate`
  int32_t best_of = 1;
  bool sampling = false;
  bool details = false;
  bool decoder_input_details = false;
  bool return_full_text = false;
  int32_t top_n_tokens = 0;   // TGI top_tokens
  int32_t alternatives = 0;   // LoRAX return_k_alternatives (Token.alternative_tokens)
  GenerationParams params;
};

// Parses and validates one request body. `stream`: whether the response streams (/generate_stream, or `/`
// with "stream": true). Errors are kInvalidArgument/kUnsupported (422 validation) or kNotFound (unknown
// adapter, also 422 on these routes).
Result<TgiRequest> parse_tgi_request(const OJson& body, const ApiModel& model, bool stream);

// `inputs` of a body (for /tokenize), checked to be a string.
Result<std::string> tgi_inputs(const OJson& body);

// The request's engine requests: best_of of them (distinct seeds drawn by the engine).
std::vector<EngineRequest> tgi_engine_requests(const TgiRequest& request);

}  // namespace ls::server
