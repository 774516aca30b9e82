// skinny_gemm.h: launcher of the decode-batch projection out = x W^T (+ bias) for up to 64 rows of x
// (skinny_gemm.cu): weight-streaming on the tensor cores, split over K when the output is narrow.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ls::cuda {

inline constexpr int64_t kSkinnyMaxRows = 64;

// Whether launch_skinny_gemm takes these operands: 1 <= m <= 64, n a multiple of 64, k of 32, leading
// dimensions multiples of 8, x and w 16-byte aligned.
bool skinny_gemm_supported(int64_t m, int64_t n, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw);

// Float32 scratch values launch_skinny_gemm needs for split-K partial sums (0 when it splits no K).
int64_t skinny_gemm_accumulator_floats(int64_t m, int64_t n, int64_t k, int num_sms);

// out[m, n] = x[m, k] w[n, k]^T (+ bias[n]); bf16 x, w, bias; out bf16 or float32. `accumulator`
// (skinny_gemm_accumulator_floats values, any contents) holds split-K partials; `arrivals` (n / 64 counters,
// zero) count the splits of each feature tile and are zero again afterwards.
cudaError_t launch_skinny_gemm(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                               int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, float* accumulator,
                               int32_t* arrivals, int num_sms, cudaStream_t stream);

}  // namespace ls::cuda
