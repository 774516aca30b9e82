// lora_delta.cuh: the device side of lora.h's LoraDelta, for kernels that add a LoRA's deltas to rows they read
// (RMSNorm, RoPE, SiLU-mul; the skinny GEMM's SiLU epilogue takes delta_module): a block's row slot, its t staged in
// shared memory, the module of a column, and the deltas of 8 adjacent columns (from t and B, or from the sums the
// expand wrote); for kernels that hold one slot's B for many rows (launch_rope_shared, launch_silu_mul_shared),
// their rows' slots and t, and one column's delta read from memory for rows of other slots.
#pragma once

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"
#include "backend/lora_weights.h"

namespace ls::cuda {

// What a block keeps of its row: the slot (-1: none), each module's rank there (0: not adapted) and B, and t.
struct DeltaRow {
  int slot;
  int rank[kLoraMaxModules];
  const bf16* b[kLoraMaxModules];
  float t[kLoraMaxModules][kLoraMaxRank];
};

// Module j's rank at a valid slot, as the kernels that add deltas use it: clamped to [0, module_stride] (t's room).
__device__ __forceinline__ int delta_rank(const LoraDelta& d, int j, int slot) {
  return min(max(d.m[j].ranks[slot], 0), static_cast<int>(d.module_stride));
}

// The whole block: row r's slot and its modules' ranks and B into s (the segments and slot tables do not depend
// on the previous kernel, so this may run before the programmatic wait). Ends with a barrier.
__device__ __forceinline__ void delta_row(const LoraDelta& d, int64_t r, DeltaRow& s) {
  if (threadIdx.x == 0) s.slot = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < d.num_segments; i += blockDim.x) {
    if (r >= d.seg_start[i] && r < d.seg_start[i + 1]) {
      const int slot = d.seg_slot[i];
      if (slot >= 0 && slot < d.num_slots) s.slot = slot;
    }
  }
  __syncthreads();
  if (threadIdx.x < kLoraMaxModules) {
    const int j = threadIdx.x;
    const int rank = s.slot >= 0 && j < d.num_modules ? delta_rank(d, j, s.slot) : 0;
    s.rank[j] = rank;
    s.b[j] = rank > 0 ? static_cast<const bf16*>(d.m[j].b[s.slot]) : nullptr;
  }
  __syncthreads();
}

// Hints B's rows [c, c + 8) of module j into L2 (before the programmatic wait, so the loads after it hit).
__device__ __forceinline__ void delta_prefetch8(const DeltaRow& s, int j, int64_t c) {
  if (j < 0 || s.rank[j] == 0) return;
  const char* p = reinterpret_cast<const char*>(s.b[j] + c * s.rank[j]);
  for (int off = 0; off < 8 * s.rank[j] * 2; off += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
}

// The whole block, after the programmatic wait: row r's t (summed over the shrink's splits in order, rounded to
// bf16) into s, every split's load issued before any is summed. Ends with a barrier.
__device__ __forceinline__ void delta_stage_t(const LoraDelta& d, int64_t r, DeltaRow& s) {
  for (int e = threadIdx.x; e < kLoraMaxModules * kLoraMaxRank; e += blockDim.x) {
    const int j = e / kLoraMaxRank, k = e % kLoraMaxRank;
    if (k >= s.rank[j]) continue;
    const float* t = d.t + r * d.row_stride + j * d.module_stride + k;
    float part[kLoraMaxShrinkSplits];
#pragma unroll
    for (int z = 0; z < kLoraMaxShrinkSplits; ++z) part[z] = z < d.splits ? __ldcg(t + z * d.split_stride) : 0.0f;
    float v = 0.0f;
#pragma unroll
    for (int z = 0; z < kLoraMaxShrinkSplits; ++z) v += part[z];
    s.t[j][k] = __bfloat162float(__float2bfloat16_rn(v));
  }
  __syncthreads();
}

// The module whose columns hold column c (-1: none).
__device__ __forceinline__ int delta_module(const LoraDelta& d, int64_t c) {
  int j = -1;
#pragma unroll
  for (int i = 0; i < kLoraMaxModules; ++i)
    if (i < d.num_modules && c >= d.m[i].col_begin && c < d.m[i].col_end) j = i;
  return j;
}

// v[i] = bf16(v[i] + sum over k < rank of t[k] B[c + i][k]) for module j (nothing where it does not adapt the
// row): the rounding the expand kernel applies to y. Ranks in passes of 16, each pass's 16 B words loaded before
// any is used (one wait for memory per pass).
__device__ __forceinline__ void delta_add8(const DeltaRow& s, int j, int64_t c, float (&v)[8]) {
  if (j < 0 || s.rank[j] == 0) return;
  const int rank = s.rank[j];
  const bf16* b = s.b[j] + c * rank;
  const float* t = s.t[j];
  float acc[8] = {};
  if (rank % 8 == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0) {
    for (int k0 = 0; k0 < rank; k0 += 16) {
      const bool second = k0 + 8 < rank;
      uint4 w[8][2];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        w[i][0] = *reinterpret_cast<const uint4*>(b + i * rank + k0);
        w[i][1] = second ? *reinterpret_cast<const uint4*>(b + i * rank + k0 + 8) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float f[8];
          unpack8(w[i][h], f);
#pragma unroll
          for (int q = 0; q < 8; ++q) acc[i] += f[q] * (h == 0 || second ? t[k0 + 8 * h + q] : 0.0f);
        }
      }
    }
  } else {
    for (int k = 0; k < rank; ++k)
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += __bfloat162float(b[i * rank + k]) * t[k];
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i] + acc[i]));
}

// v[i] = bf16(v[i] + d.sums[r sums_ld + c + i]) where module j adapts row r (the expand beside the projection
// wrote those sums: lora_delta_sums); nothing elsewhere.
__device__ __forceinline__ void delta_sums_add8(const LoraDelta& d, const DeltaRow& s, int j, int64_t r, int64_t c,
                                                float (&v)[8]) {
  if (j < 0 || s.rank[j] == 0) return;
  const float4* p = reinterpret_cast<const float4*>(d.sums + r * d.sums_ld + c);
  const float4 a = __ldcg(p), b = __ldcg(p + 1);
  const float add[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(v[i] + add[i]));
}

// Either kind of LoraDelta: the deltas of row r's columns [c, c + 8) (an output column; nothing outside the
// modules or where the row has no adapter) added to v, after delta_stage_t where d reads t.
__device__ __forceinline__ void delta_apply8(const LoraDelta& d, const DeltaRow& s, int64_t r, int64_t c,
                                             float (&v)[8]) {
  if (s.slot < 0) return;
  const int j = delta_module(d, c);
  if (j < 0) return;
  if (d.sums) {
    delta_sums_add8(d, s, j, r, c, v);
  } else {
    delta_add8(s, j, c - d.m[j].col_begin, v);
  }
}

// The whole block: the slots of rows [first, first + count) into slot_of (-1: none), from the segments (not the
// previous kernel's: may run before the programmatic wait). Ends with a barrier.
__device__ __forceinline__ void delta_row_slots(const LoraDelta& d, int first, int count, int* slot_of) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) slot_of[i] = -1;
  __syncthreads();
  for (int g = threadIdx.x; g < d.num_segments; g += blockDim.x) {
    const int slot = d.seg_slot[g];
    if (slot < 0 || slot >= d.num_slots) continue;
    for (int i = max(d.seg_start[g], first); i < min(d.seg_start[g + 1], first + count); ++i) slot_of[i - first] = slot;
  }
  __syncthreads();
}

// The whole block, after the programmatic wait, for kernels that hold one slot's B for many rows: the t of modules
// mod[h] (h < 2; -1: none) at ranks k < rank[h] (at most kRank), for the rows [first, first + count) whose slot
// (slot_of) is s0, from a shrink of one split (LoraArgs::one_split) rounded to bf16, into t_s[row - first][h][k];
// zeros elsewhere. blockDim.x is a multiple of 2 kRank, so a thread keeps one (h, k) and takes rows tid / (2 kRank)
// + p blockDim.x / (2 kRank), p < kPer (kPer blockDim.x / (2 kRank) >= kRows); its loads are unconditional (offset
// 0 and the value dropped where it is not taken), so that they are all in flight together: a load under a branch
// is waited for where the branch ends. Ends with a barrier.
template <int kRows, int kRank, int kPer>
__device__ __forceinline__ void delta_stage_rows_t(const LoraDelta& d, int first, int count, int s0,
                                                   const int* slot_of, const int (&mod)[2], const int (&rank)[2],
                                                   float (&t_s)[kRows][2][kRank]) {
  const int h = threadIdx.x / kRank % 2, k = threadIdx.x % kRank, row0 = threadIdx.x / (2 * kRank);
  const int step = blockDim.x / (2 * kRank);
  const int m = h == 0 ? mod[0] : mod[1], r = h == 0 ? rank[0] : rank[1];
  const bool module_live = s0 >= 0 && m >= 0 && k < r;
  int64_t at[kPer];  // each row's t offset (-1: none)
  float v[kPer];
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int i = row0 + p * step;
    const bool live = module_live && i < count && slot_of[i] == s0;
    at[p] = live ? (first + i) * d.row_stride + m * d.module_stride + k : -1;
  }
#pragma unroll
  for (int p = 0; p < kPer; ++p) v[p] = __ldcg(d.t + max(at[p], int64_t{0}));
#pragma unroll
  for (int p = 0; p < kPer; ++p) {
    const int i = row0 + p * step;
    if (i < count && i < kRows) t_s[i][h][k] = at[p] >= 0 ? __bfloat162float(__float2bfloat16_rn(v[p])) : 0.0f;
  }
  __syncthreads();
}

// Column c's delta for row r of module j with slot `slot`: sum over k < rank of bf16(t summed over the splits)
// B[c - col_begin][k], t and B read from memory (kernels that hold one slot's B for all rows, for rows of other
// slots). Not inlined: it is the rare path, and inlined at each of its callers' unrolled sites it made those kernels'
// code several times the instruction cache.
__device__ __noinline__ inline float delta_in_memory(const LoraDelta& d, int j, int slot, int64_t r, int64_t c) {
  const int rank = delta_rank(d, j, slot);
  const bf16* b = static_cast<const bf16*>(d.m[j].b[slot]) + (c - d.m[j].col_begin) * rank;
  const float* t = d.t + r * d.row_stride + j * d.module_stride;
  float acc = 0.0f;
  for (int k = 0; k < rank; ++k) {
    float v = 0.0f;
    for (int z = 0; z < d.splits; ++z) v += __ldcg(t + z * d.split_stride + k);
    acc += __bfloat162float(__float2bfloat16_rn(v)) * __bfloat162float(b[k]);
  }
  return acc;
}

}  // namespace ls::cuda
