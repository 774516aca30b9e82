// gemv.h: launcher of the small-batch projection out = x W^T (+ bias) for 1 to 4 rows of x (gemv.cu), where
// the step reads every weight once and cuBLASLt's GEMM kernels leave bandwidth unused.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

inline constexpr int64_t kGemvMaxRows = 4;

// Whether launch_gemv takes these operands: m <= kGemvMaxRows, k and the leading dimensions multiples of 8,
// x and w 16-byte aligned.
bool gemv_supported(int64_t m, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw);

// out[m, n] = x[m, k] w[n, k]^T (+ bias[n]); x, w, bias bf16; out bf16 or float32.
cudaError_t launch_gemv(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                        int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, Stream stream);

}  // namespace ls::cuda
