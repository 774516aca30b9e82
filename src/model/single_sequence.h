// single_sequence.h: running one sequence through a Transformer without an engine: teacher-forced logits of
// every position, and greedy generation. Used by the `logits` / `generate` commands and the oracle tests.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace ls {

struct SequenceOptions {
  const LoraTable* lora = nullptr;
  int32_t lora_slot = -1;
  int32_t block_size = 16;
};

// Logits [tokens.size()][vocab] of every position, computed in one prefill.
Result<std::vector<std::vector<float>>> sequence_logits(Transformer& model, const std::vector<int32_t>& tokens,
                                                        const SequenceOptions& options);

// Greedy continuation of `prompt`: up to max_new_tokens tokens, stopping after any of stop_ids.
Result<std::vector<int32_t>> greedy_generate(Transformer& model, const std::vector<int32_t>& prompt,
                                             int32_t max_new_tokens, const std::vector<int64_t>& stop_ids,
                                             const SequenceOptions& options);

// Index of the largest value (the first one on ties, as torch.argmax).
int32_t argmax_index(const float* values, int64_t n);

}  // namespace ls
