// sample.h: launchers of greedy argmax and of sampling (sample.cu), one block per logits row.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"
#include "backend/sampling_params.h"

namespace ls::cuda {

// tokens[r] = first index of the maximum of float32 row r.
cudaError_t launch_argmax(const float* logits, int64_t ld, int64_t rows, int64_t cols, int32_t* tokens,
                          Stream stream);

// tokens[r] = the draw of row r under params[r] (device array), by backend/sampling_math.h.
cudaError_t launch_sample(const float* logits, int64_t ld, int64_t rows, int64_t cols, const SamplingParams* params,
                          int32_t* tokens, Stream stream);

}  // namespace ls::cuda
