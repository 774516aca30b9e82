// gemv.h: launchers of the small-batch projection out = x W^T (+ bias) for 1 to 4 rows of x (gemv.cu), where
// the step reads every weight once and cuBLASLt's GEMM kernels leave bandwidth unused; alone, or with the LoRA of
// the modules whose outputs are its column slices in the same launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

inline constexpr int64_t kGemvMaxRows = 4;

// Whether launch_gemv takes these operands: m <= kGemvMaxRows, k and the leading dimensions multiples of 8,
// x and w 16-byte aligned.
bool gemv_supported(int64_t m, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw);

// out[m, n] = x[m, k] w[n, k]^T (+ bias[n]); x, w, bias bf16; out bf16 or float32. num_sms sizes the grid (a
// block per resident block slot).
cudaError_t launch_gemv(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                        int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, int num_sms, Stream stream);

// out[m, inter] = silu(x W_gate^T + b_gate) * (x W_up^T + b_up), bf16, with w = [W_gate; W_up] (2 inter rows)
// and bias likewise (or null): launch_gemv's conditions, the gate/up product kept in registers.
cudaError_t launch_gemv_silu(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                             int64_t ldo, int64_t m, int64_t inter, int64_t k, int num_sms, Stream stream);

// Whether launch_gemv_lora takes these operands: the GEMV's conditions for x = lora.x (lora.num_tokens rows,
// lora.in_dim columns), lora_supported, at most one segment per token, and each module's y a column slice of the
// bf16 out [num_tokens, n] (row stride ldo).
bool gemv_lora_supported(const LoraArgs& lora, const void* w, int64_t ldw, const void* out, int64_t ldo, int64_t n);
// Float32 scratch values launch_gemv_lora needs (t per token and module; any contents).
int64_t gemv_lora_scratch_floats(const LoraArgs& lora);
// out = x W^T (+ bias) + the LoRA deltas y_m += B_m,slot (A_m,slot x) per token of the modules of `lora` (their
// ys column slices of out), in one launch with one bf16 rounding per output. `counters`: 2 int32 in device
// memory, zero before the first launch (each launch leaves them zero); launches on one stream may share them.
cudaError_t launch_gemv_lora(const LoraArgs& lora, const void* w, int64_t ldw, const void* bias, void* out, int64_t ldo,
                             int64_t n, float* scratch, int32_t* counters, int num_sms, Stream stream);
// launch_gemv_silu with the LoRA of the gate and up modules added before the activation: their ys are column
// slices of gate_up [num_tokens, 2 inter] (gemv_lora_supported with out = gate_up, n = 2 inter), which only
// locates them (it is neither read nor written); out [num_tokens, inter] = silu(gate) * up, one bf16 rounding.
cudaError_t launch_gemv_lora_silu(const LoraArgs& lora, const void* w, int64_t ldw, const void* bias,
                                  const void* gate_up, int64_t gate_up_ld, void* out, int64_t ldo, int64_t inter,
                                  float* scratch, int32_t* counters, int num_sms, Stream stream);

}  // namespace ls::cuda
