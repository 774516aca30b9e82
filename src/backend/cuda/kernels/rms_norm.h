// rms_norm.h: launcher of RMSNorm, optionally fused with the residual add (rms_norm.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// out = rmsnorm(x) * weight; with `residual` non-null first residual += x and normalize the new residual; with
// `delta` non-null (residual too) x's rows first gain the deltas (lora.h's LoraDelta, columns of x; x itself is
// not written), where the previous kernel of the stream is the last that wrote t or x. The delta path needs
// cols, the row strides and the modules' column ranges multiples of 8 and 16-byte aligned rows.
cudaError_t launch_rms_norm(void* residual, int64_t residual_ld, const void* x, int64_t x_ld, const void* weight,
                            void* out, int64_t out_ld, int64_t rows, int64_t cols, float eps, const LoraDelta* delta,
                            Stream stream);

}  // namespace ls::cuda
