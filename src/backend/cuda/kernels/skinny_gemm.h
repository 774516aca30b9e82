// skinny_gemm.h: launcher of the decode-batch projection out = x W^T (+ bias) for up to 128 rows of x
// (skinny_gemm.cu): weights streamed by bulk copies through a shared-memory ring into the tensor cores, split
// over K when the output is narrow; and of the MLP's gate/up product with SiLU-mul (and LoRA deltas) in its
// epilogue.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

inline constexpr int64_t kSkinnyMaxRows = 128;      // 65-128 rows: the wgmma configuration
inline constexpr int64_t kSkinnySiluMaxRows = 64;

// Whether launch_skinny_gemm takes these operands: 1 <= m <= 128, any n, k a multiple of 8, leading
// dimensions multiples of 8, x and w 16-byte aligned.
bool skinny_gemm_supported(int64_t m, int64_t n, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw);

// Whether the skinny GEMM is the faster path on an H100 for this shape (measured against tuned cuBLASLt at 8-64
// rows, Llama-3-8B projections: up to 8 rows always; up to 32 rows where no K split is needed).
bool skinny_gemm_preferred(int64_t m, int64_t n, int64_t k, int num_sms);

// Float32 scratch values launch_skinny_gemm needs for split-K partial sums (0 when it splits no K).
int64_t skinny_gemm_accumulator_floats(int64_t m, int64_t n, int64_t k, int num_sms);

// out[m, n] = x[m, k] w[n, k]^T (+ bias[n]); bf16 x, w, bias; out bf16 or float32. `accumulator`
// (skinny_gemm_accumulator_floats values, any contents) holds split-K partials; `arrivals` (ceil(n / 128) counters,
// zero) count the splits of each feature tile and are zero again afterwards.
cudaError_t launch_skinny_gemm(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                               int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, float* accumulator,
                               int32_t* arrivals, int num_sms, Stream stream);

// The MLP's first half in one kernel: out[m, inter] = silu(x W_gate^T + b_gate) * (x W_up^T + b_up), where
// w = [W_gate; W_up] ([2 inter, k], bias likewise [2 inter] or null), out bf16. Supported where the plain
// kernel is, for up to kSkinnySiluMaxRows rows, with inter a multiple of 64 and enough 64-feature tiles that K
// needs no split.
bool skinny_gemm_silu_supported(int64_t m, int64_t inter, int64_t k, const void* x, int64_t ldx, const void* w,
                                int64_t ldw, int num_sms);
cudaError_t launch_skinny_gemm_silu(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias,
                                    void* out, int64_t ldo, int64_t m, int64_t inter, int64_t k, int num_sms,
                                    Stream stream);

inline constexpr int kSkinnyLoraModules = kLoraMaxModules;
// The LoRA epilogue takes up to 8 rows: there (H200, Llama-3-8B shape, rank 16) decode steps of 8 rows ran 1-2%
// faster than with the shrink beside the product and the expand and SiLU-mul after it (4 rows, where the GEMV and a
// separate SiLU-mul ran before: 7-9%); at 32 rows with one adapter they were even, at 64 rows 1% slower, and with an
// adapter per row 5-15% slower (bench/cuda_engine_notes.md, H200 runs 26-37: the epilogue's B reads wait once per 8
// adapters, and the shrink runs ahead of the product).
inline constexpr int64_t kSkinnyLoraMaxRows = 8;

// launch_skinny_gemm_silu with the LoRA deltas (lora.h's LoraDelta; gate c is product column c, up c is inter + c)
// added in its epilogue, before the activation. The previous kernel of the stream must be the
// shrink that writes t (the kernel reads x before its programmatic wait, t after it). Supported where the plain
// SiLU kernel is, for up to kSkinnyLoraMaxRows rows, with every module's columns starting and ending at multiples
// of 8.
cudaError_t launch_skinny_gemm_silu_lora(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias,
                                         void* out, int64_t ldo, int64_t m, int64_t inter, int64_t k,
                                         const LoraDelta& lora, int num_sms, Stream stream);

}  // namespace ls::cuda
