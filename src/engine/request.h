// request.h: what a generation request asks of the engine (EngineRequest, GenerationParams) and what the
// engine sends back for it (RequestUpdate). Plain values: the HTTP side fills a request from either API family
// after validation and tokenization, and renders updates in its family's shape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/sampling_params.h"
#include "core/status.h"

namespace ls {

// Why a request ended. kStopSequence: one of StopConditions::stop_strings matched; kStopToken: one of
// stop_token_ids (not an end-of-sequence id) was generated; kEos: an end-of-sequence id of the model.
enum class FinishReason { kNone, kLength, kEos, kStopSequence, kStopToken, kAbort, kError };
const char* finish_reason_name(FinishReason reason);  // "length", "eos_token", "stop_sequence", ...

struct StopConditions {
  int32_t max_new_tokens = 16;                // >= 1; generation ends with kLength after this many tokens
  int32_t min_new_tokens = 0;                 // end-of-sequence ids and stops are ignored before this many
  std::vector<std::string> stop_strings;      // matched on the detokenized output, across token boundaries
  std::vector<int32_t> stop_token_ids;        // extra ids that end generation (vLLM stop_token_ids)
  bool ignore_eos = false;                    // do not stop at the model's end-of-sequence ids
  bool include_stop_str_in_output = false;    // keep a matched stop string in the text (vLLM's option)
};

struct GenerationParams {
  // Sampling: temperature <= 0 is greedy. seed and step are filled by the engine (seed from `seed` below,
  // step = the number of tokens generated so far).
  SamplingParams sampling;
  std::optional<uint64_t> seed;               // absent: the engine draws one and reports it
  PenaltyParams penalties;
  StopConditions stop;
  int32_t logprobs = -1;                      // -1: none; 0: the chosen token's; n > 0: and the n most likely
  int32_t prompt_logprobs = -1;               // -1: none; >= 0: every prompt token's (from the second on),
                                              //  with n alternatives
  bool skip_special_tokens = true;            // in text (RequestUpdate::text and TokenInfo::text)
};

struct EngineRequest {
  std::vector<int32_t> prompt;                // token ids, non-empty, within the model's vocabulary
  std::string adapter;                        // "" for the base model, else what names the adapter
  std::string adapter_source;                 // how `adapter` is resolved: "" (a name), "local", "hub"
  GenerationParams params;
};

// One token with what was asked about it.
struct TokenInfo {
  int32_t id = 0;
  std::string text;                           // the incremental detokenization at this token (may be empty
                                              // while a character is incomplete); no stop-string hold-back
  float logprob = 0.0f;                       // when logprobs >= 0 (prompt: for prompt_logprobs), else 0
  std::vector<std::pair<int32_t, float>> top; // the n most likely ids and their logprobs, descending
};

struct RequestTimes {                         // seconds on a steady clock (engine_clock_seconds())
  double arrival = 0, scheduled = 0, first_token = 0, finished = 0;
};

// What a request produced since its previous update. The engine coalesces: when the reader has not taken
// an update yet, the next one is merged into it, so a slow reader never makes the engine wait or buffer more
// than the request's own output.
struct RequestUpdate {
  std::vector<TokenInfo> tokens;              // tokens generated since the last update
  std::string text;                           // text since the last update, with stop strings handled
                                              // (held back while it could be the start of a stop string)
  std::vector<TokenInfo> prompt_tokens;       // with prompt_logprobs, in the first update: prompt[1..]
  bool finished = false;
  // Set when finished:
  FinishReason reason = FinishReason::kNone;
  std::string stop_string;                    // kStopSequence: the matched string
  int32_t stop_token = -1;                    // kStopToken / kEos: the id
  Status error;                               // kError: why (the request failed, the server goes on)
  int32_t prompt_len = 0;                     // always set: tokens in the prompt
  int32_t generated = 0;                      // always set: tokens generated so far
  uint64_t seed = 0;                          // always set: the seed in effect
  int32_t num_preemptions = 0;                // times the request was preempted and recomputed
  RequestTimes times;                         // always set; later fields 0 until reached
};

// Seconds on the monotonic clock all RequestTimes use.
double engine_clock_seconds();

}  // namespace ls
