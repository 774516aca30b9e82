// tgi_response.h: TGI/LoRAX response bodies built from engine output: GenerateResponse (with details, prefill,
// top_tokens, best_of_sequences), the StreamResponse events of /generate_stream, and the x-* headers. Each
// object carries the union of TGI's and LoRAX's fields (interfaces.md 1.3, 1.4, 2.5): `index`, `top_tokens`,
// `input_length` for TGI clients, `prompt_tokens`, `skipped_tokens`, `skipped`, `alternative_tokens` for LoRAX.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/tgi_request.h"

namespace ls::server {

const char* tgi_finish_reason(FinishReason reason);  // "length", "eos_token", "stop_sequence"

// A Token object: {id, text, logprob, special, skipped[, alternative_tokens]}.
OJson tgi_token(const TokenInfo& token, const TgiRequest& request, const Tokenizer& tokenizer);
// top_tokens of one generated token: its top_n_tokens alternatives as Token objects.
OJson tgi_top_tokens(const TokenInfo& token, const TgiRequest& request, const Tokenizer& tokenizer);

// The sequence a best_of request returns: the highest cumulative logprob.
size_t tgi_best_sequence(const std::vector<SequenceOutput>& outputs);
// The error a finished job answers with instead of a result: a failed sequence (424 generation) or an aborted
// one (500 incomplete_generation).
std::optional<ApiError> tgi_job_error(const std::vector<SequenceOutput>& outputs);

OJson tgi_generate_response(const TgiRequest& request, const std::vector<SequenceOutput>& outputs,
                            const Tokenizer& tokenizer);

// Response headers: x-compute-type, x-compute-characters and (when `output` is given: a finished
// non-streaming request) TGI's timing and token-count headers; LoRAX's x-adapter-id, x-adapter-source and
// x-model-id when an adapter was used. request_start/submitted: engine_clock_seconds() values.
std::vector<std::pair<std::string, std::string>> tgi_headers(const TgiRequest& request, const ApiModel& model,
                                                             const SequenceOutput* output, double request_start,
                                                             double submitted);

// The events of /generate_stream for one sequence, update by update.
class TgiStreamRenderer {
 public:
  TgiStreamRenderer(const TgiRequest& request, const Tokenizer& tokenizer) : r_(request), tokenizer_(tokenizer) {}
  // Appends one event per token of the update; the last token of the finishing update carries generated_text
  // (and details when asked). A failed or aborted request ends with an error event.
  void render(const RequestUpdate& update, std::string& out);

 private:
  const TgiRequest& r_;
  const Tokenizer& tokenizer_;
  uint32_t index_ = 0;
  std::string text_;
  std::optional<TokenInfo> last_;
};

}  // namespace ls::server
