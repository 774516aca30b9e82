// generate.h: running requests to completion through an Engine from a thread without an event loop (the CLI
// and tests): submit them all at once, so they share steps as a server's requests do, then collect each
// stream's updates until it finishes.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"

namespace ls {

struct Generation {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<TokenInfo> token_info;     // per generated token
  std::vector<TokenInfo> prompt_tokens;  // with prompt_logprobs
  FinishReason reason = FinishReason::kNone;
  Status error;                          // reason kError: why
  std::string stop_string;
  int32_t stop_token = -1;
  uint64_t seed = 0;
  int32_t num_preemptions = 0;
};

// Submits every request (the engine must be started) and waits for all. A request the engine refuses fails
// the call with its status (requests already submitted are cancelled).
Result<std::vector<Generation>> generate_all(Engine& engine, std::vector<EngineRequest> requests);

}  // namespace ls
