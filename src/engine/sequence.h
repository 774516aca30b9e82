// sequence.h: Sequence, everything the engine thread keeps about one request: its tokens, how many of them
// are in the KV cache, its blocks, its adapter and slot, its sampling state, its text (TextOutput) and its
// stream. Created by Engine::submit's inbox, owned by the engine thread until the request finishes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/model_runner.h"
#include "engine/request_stream.h"
#include "engine/text_output.h"
#include "kv/block_pool.h"
#include "lora/adapter_catalog.h"

namespace ls {

struct Sequence {
  uint64_t id = 0;
  std::shared_ptr<RequestStream> stream;
  std::shared_ptr<AdapterClaim> claim;              // the adapter asked for (null: the base model)
  std::shared_ptr<const RegisteredAdapter> adapter; // set once the claim's load is ready
  GenerationParams params;
  uint64_t seed = 0;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;
  int32_t num_computed = 0;                 // tokens of prompt + output whose K/V are in the cache
  std::unique_ptr<BlockTable> blocks;       // null while waiting
  int32_t slot = -1;                        // adapter slot from acquire (maybe still loading) to finish (-1: none)
  int32_t preemptions = 0;
  double copy_wait_since = 0;               // a step found it waiting only for its slot's copy, at this time
  double copy_wait_seconds = 0;             // summed such waits before it is admitted (Scheduler)
  FinishReason stop_reason = FinishReason::kNone;  // set when a stop needing no text was seen
  bool finished = false;                           // its final update is sent
  RequestTimes times;
  double last_token_time = 0;
  std::optional<TextOutput> text;           // null when the model has no tokenizer
  std::vector<TokenInfo> prompt_logprobs;   // collected during prefill when asked for
  bool prompt_logprobs_sent = false;
  TokenHistory history;                     // distinct tokens and output counts (penalties only)
  std::unordered_map<int32_t, int32_t> history_index;

  // Waiting for its adapter to load: not schedulable yet.
  bool adapter_pending() const { return claim && !adapter; }
  const std::string& adapter_name() const {
    static const std::string kBase;
    return claim ? claim->name() : kBase;
  }
  int32_t num_tokens() const { return static_cast<int32_t>(prompt.size() + output.size()); }
  int32_t token_at(int32_t i) const {
    const auto p = static_cast<int32_t>(prompt.size());
    return i < p ? prompt[i] : output[i - p];
  }
  // Tokens not yet in the cache: the rest of the prompt (or, after preemption, prompt and output), or the
  // last generated token of a decoding sequence.
  int32_t num_pending() const { return num_tokens() - num_computed; }
  bool prefill_done() const { return num_computed >= static_cast<int32_t>(prompt.size()); }
  // Counts a token in the history when penalties need one.
  void note_token(int32_t token, bool is_output) {
    if (!params.penalties.active()) return;
    auto [it, fresh] = history_index.try_emplace(token, static_cast<int32_t>(history.size()));
    if (fresh) history.emplace_back(token, 0);
    if (is_output) ++history[it->second].second;
  }
};

}  // namespace ls
