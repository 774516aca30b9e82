// sampling_params.h: SamplingParams, how one logits row becomes one token (Backend::sample). A plain struct so
// the engine, the CPU backend and the CUDA backend share it. The filters apply in transformers' order:
// temperature, top-k, top-p (over the top-k distribution), min-p; the draw for a row is uniform_at(seed, step)
// (backend/random_fill.h), so a request's tokens do not depend on what else shares the batch.
#pragma once

#include <cstdint>

namespace ls {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax, first maximum on ties)
  int32_t top_k = 0;         // <= 0 or >= vocab: no top-k filter
  float top_p = 1.0f;        // >= 1: no top-p filter
  float min_p = 0.0f;        // <= 0: no min-p filter
  uint64_t seed = 0;         // the request's seed
  uint64_t step = 0;         // the request's draw counter (its number of generated tokens)
};

}  // namespace ls
