// attention_common.cuh: what the attention kernels share: the paged-cache address of a key and each query's key
// range (the tensor-core fragment helpers are common.cuh's).
#pragma once

#include "backend/cuda/kernels/attention.h"
#include "backend/cuda/kernels/common.cuh"

namespace ls::cuda {

constexpr float kLog2e = 1.4426950408889634f;

// Element offset of (key position, kv head) in a layer's K or V cache. Positions and block sizes fit in 32
// bits, so the division is a 32-bit one (a shift for power-of-two block sizes); only the offset is 64-bit.
__device__ __forceinline__ int64_t cache_offset(const AttentionArgs& a, const int32_t* table, int64_t key,
                                                int64_t kv_head) {
  const uint32_t k32 = static_cast<uint32_t>(key), bs = static_cast<uint32_t>(a.block_size);
  uint32_t page, within;
  if (a.block_shift >= 0) {
    page = k32 >> a.block_shift;
    within = k32 & (bs - 1);
  } else {
    page = k32 / bs;
    within = k32 - page * bs;
  }
  const int64_t slot = static_cast<int64_t>(table[page]) * bs + within;
  return (slot * a.num_kv_heads + kv_head) * a.head_dim;
}

// The keys a query at `pos` of a sequence with `ctx` cached positions sees: [begin, end).
struct KeyRange {
  int64_t begin, end;
};
__device__ __forceinline__ KeyRange key_range(const AttentionArgs& a, int64_t pos, int64_t ctx) {
  const int64_t end = pos + 1 < ctx ? pos + 1 : ctx;
  int64_t begin = a.sliding_window > 0 ? pos - a.sliding_window + 1 : 0;
  if (begin < 0) begin = 0;
  return {begin, end > begin ? end : begin};
}

// The args with block_shift filled in (launchers call this once).
inline AttentionArgs with_block_shift(AttentionArgs a) {
  a.block_shift = -1;
  for (int s = 0; s < 31; ++s)
    if ((int64_t{1} << s) == a.block_size) a.block_shift = s;
  return a;
}

}  // namespace ls::cuda
