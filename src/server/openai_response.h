// openai_response.h: OpenAI response bodies as vLLM renders them (interfaces.md 3.6, 3.7): text_completion and
// chat.completion objects with usage and both logprobs formats, and the chunk stream of each route
// ("data: {json}", a usage chunk when stream_options.include_usage, then "data: [DONE]").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/api_error.h"
#include "server/generation_job.h"
#include "server/openai_request.h"

namespace ls::server {

const char* openai_finish_reason(FinishReason reason);  // "stop", "length", "abort"
OJson openai_stop_reason(FinishReason reason, const std::string& stop_string, int32_t stop_token);
// "cmpl-..." / "chatcmpl-..." with 32 random hex digits.
std::string openai_response_id(OpenAiKind kind);
int64_t unix_time_now();

// The sequences that become choices, in choice order: for each prompt the n best of its best_of sequences by
// cumulative logprob (the first n when best_of == n).
std::vector<size_t> openai_choice_sequences(const OpenAiRequest& request, const std::vector<SequenceOutput>& outputs);
// The error a finished job answers with instead of a result (a sequence that failed).
std::optional<ApiError> openai_job_error(const std::vector<SequenceOutput>& outputs);

OJson openai_usage(int64_t prompt_tokens, int64_t completion_tokens);
OJson completion_response(const OpenAiRequest& request, const std::vector<SequenceOutput>& outputs,
                          const Tokenizer& tokenizer, const std::string& id, int64_t created);
OJson chat_response(const OpenAiRequest& request, const std::vector<SequenceOutput>& outputs,
                    const Tokenizer& tokenizer, const std::string& id, int64_t created);

// Logprob objects for a run of tokens (openai_response.cpp).
class LogprobWriter {
 public:
  LogprobWriter(const OpenAiRequest& request, const Tokenizer& tokenizer) : r_(request), tokenizer_(tokenizer) {}
  std::string token_string(int32_t id) const;
  // Completions: {text_offset, token_logprobs, tokens, top_logprobs}; `prompt` entries (echo) come first, the
  // first of them with null logprobs. text_offset counts characters from `offset`, which is advanced.
  OJson completion(const std::vector<int32_t>* prompt_ids, const std::vector<TokenInfo>& prompt_tokens,
                   const std::vector<TokenInfo>& tokens, int64_t& offset) const;
  // Chat: {"content": [{token, logprob, bytes, top_logprobs}]}.
  OJson chat(const std::vector<TokenInfo>& tokens) const;

 private:
  const OpenAiRequest& r_;
  const Tokenizer& tokenizer_;
};

// The chunks of a streamed response, update by update (streaming has best_of == n, so sequence = choice).
class OpenAiStreamRenderer {
 public:
  OpenAiStreamRenderer(const OpenAiRequest& request, const Tokenizer& tokenizer, std::string id, int64_t created);
  // Chat: the role chunk of every choice. Completions: nothing.
  std::string start();
  void render(size_t sequence, const RequestUpdate& update, std::string& out);
  // The usage chunk (when asked for) and [DONE].
  std::string finish(const std::vector<SequenceOutput>& outputs) const;

 private:
  OJson chunk(OJson choice) const;
  const OpenAiRequest& r_;
  const Tokenizer& tokenizer_;
  LogprobWriter logprobs_;
  std::string id_;
  int64_t created_;
  std::vector<bool> started_;
  std::vector<int64_t> text_offset_;
  std::vector<int64_t> generated_;
};

}  // namespace ls::server
