// lora.h: launchers of the multi-LoRA op (lora.cu) for up to three modules that read the same x (q/k/v;
// gate/up; or one module): y_m += B_m,slot (A_m,slot x) per token, the slot from the batch's segments of tokens
// sharing an adapter (one token each in decode steps), at each slot's real rank (1..kLoraMaxRank). Slot -1 and
// rank 0 cost nothing. Two kernels: shrink (t = x A^T, fp32 partial sums) and expand (y += t B^T); the grid
// depends on host scalars only (token and segment counts), so decode graphs replay it for any adapter mix.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

inline constexpr int kLoraMaxModules = 3;
inline constexpr int kLoraMaxShrinkSplits = 8;  // the shrink's K splits at most (LoraPartialLayout::splits)

// One module's slot tables (device) and output.
struct LoraModuleArgs {
  const void* const* a = nullptr;  // [num_slots] -> A [rank, in_dim] bf16
  const void* const* b = nullptr;  // [num_slots] -> B [out_dim, rank] bf16
  const int32_t* ranks = nullptr;  // [num_slots]
  int64_t out_dim = 0;
  void* y = nullptr;               // [num_tokens, out_dim] bf16, row stride y_ld, accumulated into
  int64_t y_ld = 0;
};

struct LoraArgs {
  // The batch's segments (device) and their counts (host).
  const int32_t* seg_start = nullptr;  // [num_segments + 1]
  const int32_t* seg_slot = nullptr;   // [num_segments]
  int32_t num_segments = 0;
  int32_t num_tokens = 0;
  int32_t num_slots = 0;
  int64_t in_dim = 0;                  // a multiple of 8
  const void* x = nullptr;             // [num_tokens, in_dim] bf16, 16-byte aligned rows
  int64_t x_ld = 0;
  int32_t num_modules = 0;
  LoraModuleArgs m[kLoraMaxModules];
  bool bulk_expand = true;             // thin tiles (decode) take the bulk-copy expand where it applies
};

// Whether launch_lora takes these operands (in_dim and x_ld multiples of 8, x 16-byte aligned, 1-3 modules).
bool lora_supported(const LoraArgs& a);
// Float32 scratch values launch_lora needs (the shrink's partial sums; any contents).
int64_t lora_scratch_floats(const LoraArgs& a, int num_sms);
cudaError_t launch_lora(const LoraArgs& a, float* scratch, int num_sms, Stream stream);
// launch_lora's two kernels apart, so the shrink (which reads x only) may run on another stream beside the
// projection that writes the ys; the expand must follow both. Same arguments and scratch for the pair.
cudaError_t launch_lora_shrink(const LoraArgs& a, float* scratch, int num_sms, Stream stream);
cudaError_t launch_lora_expand(const LoraArgs& a, const float* scratch, int num_sms, Stream stream);

// Where the shrink leaves t, for a kernel of another file that adds the deltas itself (the skinny GEMM's LoRA
// epilogue): module m's t of token r at rank k is the sum over z < splits of
// scratch[z * split_stride + r * row_stride + m * module_stride + k], rounded to bf16 (as the expand rounds it).
struct LoraPartialLayout {
  int splits = 0;
  int64_t split_stride = 0, row_stride = 0, module_stride = 0;
};
LoraPartialLayout lora_partial_layout(const LoraArgs& a, int num_sms);

}  // namespace ls::cuda
