// offline_batch.h: greedy generation for many sequences at once, each with its own adapter slot or none, in
// mixed batches: the first step prefills every prompt (in chunks under a token budget), then each step decodes
// one token for every unfinished sequence. The simplest engine loop, with no server and no sampling; the
// scheduler of the serving engine replaces it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace ls {

struct GenerationRequest {
  std::vector<int32_t> prompt;
  int32_t lora_slot = -1;
  int32_t max_new_tokens = 16;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these
};

struct OfflineBatchOptions {
  int32_t block_size = 16;
  int32_t max_batch_tokens = 2048;  // tokens per forward pass
};

// The generated tokens of each request (stop token included when one ended it).
Result<std::vector<std::vector<int32_t>>> generate_greedy_batch(Transformer& model,
                                                                const std::vector<GenerationRequest>& requests,
                                                                const LoraTable* lora,
                                                                const OfflineBatchOptions& options = {});

}  // namespace ls
