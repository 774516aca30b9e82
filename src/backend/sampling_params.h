// sampling_params.h: how one logits row becomes one token. SamplingParams drives Backend::sample; PenaltyParams
// and TokenCounts drive Backend::apply_penalties, which rewrites a row's logits from the request's token history
// before sampling. Plain structs so the engine, the CPU backend and the CUDA backend share them. The sampling
// filters apply in transformers' order: temperature, top-k, top-p (over the top-k distribution), min-p,
// typical-p (over what the earlier filters kept); the draw for a row is uniform_at(seed, step)
// (backend/random_fill.h), so a request's tokens do not depend on what else shares the batch.
#pragma once

#include <cstdint>

namespace ls {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax, first maximum on ties)
  int32_t top_k = 0;         // <= 0 or >= vocab: no top-k filter
  float top_p = 1.0f;        // >= 1: no top-p filter
  float min_p = 0.0f;        // <= 0: no min-p filter
  float typical_p = 1.0f;    // >= 1: no typical filter
  uint64_t seed = 0;         // the request's seed
  uint64_t step = 0;         // the request's draw counter (its number of generated tokens)
};

// vLLM's penalties: repetition (CTRL style) over the prompt and the output, frequency and presence (OpenAI
// style) over the output only.
struct PenaltyParams {
  float repetition = 1.0f;  // 1: off
  float frequency = 0.0f;   // 0: off
  float presence = 0.0f;    // 0: off
  bool active() const { return repetition != 1.0f || frequency != 0.0f || presence != 0.0f; }
};

// Per logits row, the distinct tokens of its request so far: row r owns entries [row_start[r], row_start[r+1]),
// each a token id and how often it occurs in the output (0: in the prompt only). Host arrays.
struct TokenCounts {
  int32_t num_rows = 0;
  const int32_t* row_start = nullptr;     // [num_rows + 1]
  const int32_t* token = nullptr;         // [row_start[num_rows]]
  const int32_t* output_count = nullptr;  // [row_start[num_rows]]
  const PenaltyParams* params = nullptr;  // [num_rows]
};

}  // namespace ls
