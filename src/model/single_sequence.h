// single_sequence.h: teacher-forced logits of every position of one sequence, computed without an engine (one
// prefill over a private KV cache). Used by the `logits` command and the oracle tests; generation goes through
// the engine (engine/engine.h).
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


}  // namespace ls
