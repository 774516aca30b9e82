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
inline constexpr int kLoraMaxShrinkSplits = 8;  // the shrink's K splits at most (LoraDelta::splits)

// One module's slot tables (device) and output.
struct LoraModuleArgs {
  const void* const* a = nullptr;  // [num_slots] -> A [rank, in_dim] bf16
  const void* const* b = nullptr;  // [num_slots] -> B [out_dim, rank] bf16
  const int32_t* ranks = nullptr;  // [num_slots]
  int64_t out_dim = 0;
  void* y = nullptr;               // [num_tokens, out_dim] bf16, row stride y_ld, accumulated into
  int64_t y_ld = 0;
  // Set: the expand writes its fp32 sums t B^T here ([num_tokens, out_dim], row stride y_ld) and leaves y alone;
  // rows it does not adapt are not written (lora_delta_sums).
  float* sums = nullptr;
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
  // The shrink's K in one split: t needs no sum over splits, for consumers that read each row's t many times (the
  // shared-adapter kernels read it once per block of columns).
  bool one_split = false;
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

// The deltas as another kernel adds them to an output it reads (the skinny GEMM's SiLU epilogue, RMSNorm, SiLU-mul),
// from the t the shrink left in its scratch: column c of that output in module j's columns [col_begin, col_end)
// gains, for row r with slot s (from the segments; -1 or past the slots: none), sum over k < ranks_j[s] of
// t_j[r][k] B_j,s[c - col_begin][k], where t_j[r][k] = bf16(sum over z < splits of
// t[z split_stride + r row_stride + j module_stride + k]). With `sums` set (lora_delta_sums), that sum is
// sums[r sums_ld + c] instead, written by the expand; t and B are not read (RMSNorm, SiLU-mul).
struct LoraDelta {
  const int32_t* seg_start = nullptr;  // [num_segments + 1]
  const int32_t* seg_slot = nullptr;   // [num_segments]
  int32_t num_segments = 0, num_slots = 0;
  const float* t = nullptr;
  const float* sums = nullptr;
  int64_t sums_ld = 0;
  int splits = 0;
  int64_t split_stride = 0, row_stride = 0, module_stride = 0;
  int num_modules = 0;
  struct Module {
    const void* const* b = nullptr;  // [num_slots] -> B [col_end - col_begin, rank] bf16
    const int32_t* ranks = nullptr;  // [num_slots], at most module_stride
    int64_t col_begin = 0, col_end = 0;
  } m[kLoraMaxModules];
};

// The LoraDelta of a's modules for a kernel that reads their ys as column slices of out (row stride out_ld,
// out_cols columns), with t in scratch after launch_lora_shrink(a, scratch, num_sms). False where a module's y is
// not such a slice.
bool lora_delta(const LoraArgs& a, const void* out, int64_t out_ld, int64_t out_cols, const float* scratch,
                int num_sms, LoraDelta& d);
// Points a's expand at sums (fp32, d's output's row stride and columns: lora_delta first) and d at the same, so
// that the expand (launch_lora_expand, beside the projection) writes the deltas d's kernel adds. False where sums
// or the row stride do not allow 16-byte accesses.
bool lora_delta_sums(LoraArgs& a, float* sums, LoraDelta& d);
// Whether every module's columns start and end at multiples of 8 (the kernels that add deltas take 8 columns at
// a time).
bool lora_delta_aligned(const LoraDelta& d);
// What a kernel that adds deltas to an output of `cols` columns checks before launching: d complete and aligned,
// its modules inside the columns, and the kernel's vector path (`vec`) available.
bool lora_delta_launchable(const LoraDelta& d, int64_t cols, bool vec);

}  // namespace ls::cuda
