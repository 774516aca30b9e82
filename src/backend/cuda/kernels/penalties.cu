// penalties.cu: one block per logits row; its threads take the row's seen tokens (distinct, so no two write one
// logit). penalized_logit uses explicit round-to-nearest intrinsics on the device, so no multiply-add is fused.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/penalties.h"
#include "backend/sampling_math.h"

namespace ls::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) penalties_kernel(float* logits, int64_t ld, int64_t cols,
                                                            const int32_t* row_start, const int32_t* token,
                                                            const int32_t* output_count, const PenaltyParams* params) {
  pdl_wait();
  pdl_launch_dependents();
  const PenaltyParams p = params[blockIdx.x];
  if (p.repetition == 1.0f && p.frequency == 0.0f && p.presence == 0.0f) return;
  float* row = logits + blockIdx.x * ld;
  for (int32_t e = row_start[blockIdx.x] + threadIdx.x; e < row_start[blockIdx.x + 1]; e += kThreads) {
    const int32_t t = token[e];
    if (t >= 0 && t < cols) row[t] = penalized_logit(row[t], output_count[e], p);
  }
}

}  // namespace

cudaError_t launch_penalties(float* logits, int64_t ld, int64_t rows, int64_t cols, const int32_t* row_start,
                             const int32_t* token, const int32_t* output_count, const PenaltyParams* params,
                             Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!logits || !row_start || !params || cols <= 0 || ld < cols) return cudaErrorInvalidValue;
  return launch(penalties_kernel, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream, logits, ld, cols,
                row_start, token, output_count, params);
}

}  // namespace ls::cuda
