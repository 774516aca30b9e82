// penalties.h: launcher of the penalties op (penalties.cu): per logits row, the request's repetition, frequency
// and presence penalties applied to the logits of the tokens it has seen, by penalized_logit
// (backend/sampling_math.h) with single IEEE operations, so the result equals the CPU twin bit for bit.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"
#include "backend/sampling_params.h"

namespace ls::cuda {

// logits[r][token[e]] = penalized_logit(logits[r][token[e]], output_count[e], params[r]) for the entries e in
// [row_start[r], row_start[r + 1]) (device arrays; tokens outside [0, cols) skipped).
cudaError_t launch_penalties(float* logits, int64_t ld, int64_t rows, int64_t cols, const int32_t* row_start,
                             const int32_t* token, const int32_t* output_count, const PenaltyParams* params,
                             Stream stream);

}  // namespace ls::cuda
