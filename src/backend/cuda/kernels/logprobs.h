// logprobs.h: launcher of the log-probabilities op (logprobs.cu): per float32 logits row, the log-softmax value
// of a target token and the top-n tokens with theirs (descending, ties to the lower id), n <= 20.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

inline constexpr int kLogprobsMaxTop = 20;

// logprob[r] = logits[r][targets[r]] - logsumexp(logits[r]) (-inf for a target outside the row); top_ids and
// top_logprobs [rows, top_n] (entries past the row's length: id -1, -inf). Device arrays.
cudaError_t launch_logprobs(const float* logits, int64_t ld, int64_t rows, int64_t cols, const int32_t* targets,
                            int32_t top_n, float* logprob, int32_t* top_ids, float* top_logprobs, Stream stream);

}  // namespace ls::cuda
