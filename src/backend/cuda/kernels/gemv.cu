// gemv.cu: the weight-streaming projection for decode steps of 1 to 4 tokens, alone or with the LoRA of the
// modules whose outputs are its column slices. Persistent blocks, one per resident block slot, take groups of
// kRows output features in turn; a block's threads split the group's weight rows and read them with 16-byte loads
// that bypass L1 (kUnroll x kRows loads in flight per thread; the first group's issued before the wait for the
// previous kernel, each next group's before the current one's reduction), while the few activation rows come
// through L1; fp32 accumulation, warp then block reduction. For the MLP's gate/up product a group is two features'
// gate and up rows, and the epilogue writes silu(gate) * up: the product never reaches memory and no SiLU-mul kernel
// follows (launch_gemv_silu, launch_gemv_lora_silu).
//
// With LoRA (launch_gemv_lora), one launch of persistent blocks, one per resident block slot, that take work items
// in turn (block b: items b, b + blocks, ...): first the shrink's units, then the projection's groups of kRows
// features.
//  - Shrink unit (segment, module, split), t = x A^T: streams 4 rows of the segment's A at a time over all of K,
//    exactly as a group streams W, and stores t in fp32 for every token of the segment's slot (a segment whose
//    slot an earlier segment has does nothing, so a batch sharing one adapter reads its A once); then it bumps a
//    done counter. Its block first asks L2 for the weight rows of its first group (a bulk prefetch).
//  - Groups: before waiting for the previous kernel a block issues its first group's weights, looks up its
//    tokens' slots and copies the group's B rows into shared memory (cp.async); the next group's weights and B rows
//    are issued before each group's epilogue. After its first group it waits for the done counter (normally
//    complete by then: the units are every block's first item, no longer than a group) and copies t; the first
//    group's epilogue waits for the second group, so that neither wait shows. Each output adds t (rounded to bf16,
//    as PEFT rounds it) times its B row before its one rounding to bf16, in warp 0 (2-8 lanes per output). No
//    kernel of its own reads or writes y again.
// The last block to end zeroes the counters for the next launch. The grid is no larger than the blocks
// the GPU holds at once (the occupancy of the whole GPU: a share of its SMs under MPS or green contexts would need
// a smaller grid), so every block that waits runs beside the units it waits for, which never wait. The grid
// depends on host scalars only (tokens, segments, modules, out width), so a graph replays any adapter mix.
// History (bench/cuda_engine_notes.md, run 12): a projection block per group with the wait and the t and B loads
// in its tail ran 30% slower than two kernels; a shrink kernel chained by PDL before a persistent projection paid
// ~2 us per projection for the chain; the epilogue spread over all warps or spilling registers at 4 blocks per SM
// cost more than the 2 blocks per SM that fit every row count.
#include <algorithm>

#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gemv.h"
#include "backend/lora_weights.h"

namespace ls::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 4;          // output features (or A rows) per block and pass
constexpr int kUnroll = 2;        // 16-byte chunks per row in flight per thread, per iteration
constexpr int kShrinkSplits = 8;  // LoRA shrink: units per segment and module at most (rank 32 in one pass each)
// Output features per group: kRows, or with kSilu two features' gate and up rows.
template <bool kSilu>
constexpr int kGroupFeatures = kSilu ? kRows / 2 : kRows;

// The weight stream of one block: kRows rows of K, thread t taking 16-byte chunks t, t + 256, ... so that even
// K = 14336 needs only a few dependent rounds of loads.
struct RowStream {
  const bf16* rows[kRows];
  uint4 wv[kUnroll][kRows];
  int64_t chunks;  // K / 8

  // Rows first .. first + kRows - 1 of a matrix of `count` rows (those past the end repeat row `first`).
  __device__ __forceinline__ void set_rows(const bf16* base, int64_t ld, int64_t first, int64_t count) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) rows[r] = base + (first + r < count ? first + r : first) * ld;
  }

  // Gate rows f, f + 1 and the matching up rows inter + f, inter + f + 1 of a [W_gate; W_up] matrix (a feature
  // past the end repeats feature f).
  __device__ __forceinline__ void set_gate_up_rows(const bf16* base, int64_t ld, int64_t f, int64_t inter) {
    static_assert(kRows == 4, "a gate/up group is two features");
    const int64_t f1 = f + 1 < inter ? f + 1 : f;
    rows[0] = base + f * ld;
    rows[1] = base + f1 * ld;
    rows[2] = base + (inter + f) * ld;
    rows[3] = base + (inter + f1) * ld;
  }

  // The weight rows of projection group `group` of n output features (kSilu: n = inter, w = [W_gate; W_up]).
  template <bool kSilu>
  __device__ __forceinline__ void set_group_rows(const bf16* w, int64_t ld, int64_t group, int64_t n) {
    if constexpr (kSilu) {
      set_gate_up_rows(w, ld, group * kGroupFeatures<kSilu>, n);
    } else {
      set_rows(w, ld, group * kRows, n);
    }
  }

  __device__ __forceinline__ void load(int64_t c0) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + kThreads * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) wv[u][r] = c < chunks ? load_stream16(rows[r] + c * 8) : make_uint4(0, 0, 0, 0);
    }
  }

  // acc[mi][r] += x[mi] . row r, with the first round already loaded (load(threadIdx.x)).
  template <int M>
  __device__ __forceinline__ void run(const bf16* __restrict__ x, int64_t ldx, float (&acc)[M][kRows]) {
    for (int64_t c0 = threadIdx.x; c0 < chunks; c0 += kThreads * kUnroll) {
      if (c0 != threadIdx.x) load(c0);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + kThreads * u;
        if (c >= chunks) break;
        float wf[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) unpack8(wv[u][r], wf[r]);
#pragma unroll
        for (int mi = 0; mi < M; ++mi) {
          float xv[8];
          unpack8(__ldg(reinterpret_cast<const uint4*>(x + mi * ldx + c * 8)), xv);
#pragma unroll
          for (int r = 0; r < kRows; ++r)
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[mi][r] = fmaf(xv[j], wf[r][j], acc[mi][r]);
        }
      }
    }
  }
};

// Each warp's sums into partial[warp][mi * kRows + r]; the caller synchronizes the block before reading them.
template <int M>
__device__ __forceinline__ void warp_partials(float (&acc)[M][kRows],
                                              float (&partial)[kThreads / 32][kGemvMaxRows * kRows]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float v = warp_sum(acc[mi][r]);
      if (lane == 0) partial[warp][mi * kRows + r] = v;
    }
}

__device__ __forceinline__ float block_sum(const float (&partial)[kThreads / 32][kGemvMaxRows * kRows], int i) {
  float v = 0.0f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) v += partial[w][i];
  return v;
}

// Output i's projection (bias[col] + the warps' partial sums), in one order for both kernels: a token without an
// adapter gets the same bits from the LoRA kernel as from the GEMV alone.
__device__ __forceinline__ float projection_sum(const bf16* __restrict__ bias, int64_t col,
                                                const float (&partial)[kThreads / 32][kGemvMaxRows * kRows], int i) {
  return (bias ? __bfloat162float(bias[col]) : 0.0f) + block_sum(partial, i);
}

// A group's kRows product columns: features group * kRows + r, or with kSilu (w = [W_gate; W_up], n = inter) gate
// features 2 group, 2 group + 1 (r = 0, 1) and their up columns n + 2 group + (r - 2). Whether column r lies inside
// the product: has_col.
template <bool kSilu>
__device__ __forceinline__ int64_t group_col(int64_t group, int r, int64_t n) {
  constexpr int kF = kGroupFeatures<kSilu>;
  return (r < kF ? 0 : n) + group * kF + r % kF;
}
template <bool kSilu>
__device__ __forceinline__ bool has_col(int64_t group, int r, int64_t n) {
  return group * kGroupFeatures<kSilu> + r % kGroupFeatures<kSilu> < n;
}

// The LoRA as the kernel reads it (launch_gemv_lora fills it from LoraArgs).
struct GemvLora {
  const int32_t* seg_start;  // [num_segments + 1]
  const int32_t* seg_slot;   // [num_segments]
  int32_t num_segments, num_slots, num_modules;
  int32_t splits;            // shrink units per segment and module (each takes every splits-th chunk of 4 ranks)
  int32_t shrink_units;      // shrink units (segments x modules x splits): the first work items
  const void* const* a[kLoraMaxModules];
  const void* const* b[kLoraMaxModules];
  const int32_t* ranks[kLoraMaxModules];
  int64_t col[kLoraMaxModules];      // the module's first column of out
  int64_t out_dim[kLoraMaxModules];
  float* t;                  // [tokens][num_modules][kLoraMaxRank] fp32
  int32_t* counters;         // [2]: shrink units done, blocks ended; zero between launches
};

// The slot of segment s, or -1 (none, out of range, or an empty segment).
__device__ __forceinline__ int segment_slot(const GemvLora& l, int s) {
  const int32_t slot = l.seg_slot[s];
  return slot >= 0 && slot < l.num_slots && l.seg_start[s + 1] > l.seg_start[s] ? slot : -1;
}

__device__ __forceinline__ int token_slot(const GemvLora& l, int token) {
  for (int s = 0; s < l.num_segments; ++s)
    if (token >= l.seg_start[s] && token < l.seg_start[s + 1]) return segment_slot(l, s);
  return -1;
}

// Shrink unit b = (segment, module, split): t[token][m][4c .. 4c + 3] = x[token] . A rows for the chunks
// c = split, split + splits, ... below the slot's rank, for every token of the slot; then it counts itself done.
template <int M>
__device__ void shrink_block(const bf16* __restrict__ x, int64_t ldx, int64_t k, const GemvLora& l, int b,
                             float (&partial)[kThreads / 32][kGemvMaxRows * kRows]) {
  const int split = b % l.splits, m = b / l.splits % l.num_modules, seg = b / (l.splits * l.num_modules);
  int slot = seg < l.num_segments ? segment_slot(l, seg) : -1;
  for (int s = 0; s < seg && slot >= 0; ++s)
    if (segment_slot(l, s) == slot) slot = -1;  // an earlier segment's blocks compute this slot's t
  const int rank = slot >= 0 ? l.ranks[m][slot] : 0;
  const bf16* a = slot >= 0 ? static_cast<const bf16*>(l.a[m][slot]) : nullptr;
  RowStream s;
  s.chunks = k / 8;
  auto rows_of = [&](int c) { s.set_rows(a, k, kRows * c, rank); };
  if (kRows * split < rank) {  // A does not depend on the previous kernel
    rows_of(split);
    s.load(threadIdx.x);
  }
  pdl_wait();
  pdl_launch_dependents();
  for (int c = split; kRows * c < rank; c += l.splits) {
    if (c != split) {
      rows_of(c);
      s.load(threadIdx.x);
    }
    float acc[M][kRows] = {};
    s.run<M>(x, ldx, acc);
    warp_partials<M>(acc, partial);
    __syncthreads();
    if (threadIdx.x < M * kRows) {
      const int mi = threadIdx.x / kRows, r = kRows * c + threadIdx.x % kRows;
      if (r < rank && token_slot(l, mi) == slot)
        l.t[(static_cast<int64_t>(mi) * l.num_modules + m) * kLoraMaxRank + r] = block_sum(partial, threadIdx.x);
    }
    __syncthreads();  // partial is reused; after the last pass, every t of the block is written
  }
  if (threadIdx.x == 0) {  // publish t (after pdl_wait: the previous launch has zeroed the counter)
    __threadfence();
    atomicAdd(&l.counters[0], 1);
  }
}

// Thread 0 of each block: waits until every shrink unit is done.
__device__ __forceinline__ void wait_for_shrink(const GemvLora& l) {
  int32_t done;
  do {
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(done) : "l"(l.counters));
  } while (done < l.shrink_units);
}

// Thread 0 of each block, as the block ends (its wait_for_shrink behind it): the last block to arrive zeroes the
// counters for the next launch (no block reads them after its wait). At the block's end, not beside its wait, so
// that the grid's arrivals on one address spread over the blocks' finishing times instead of holding every block's
// first barrier. History (bench/cuda_engine_notes.md, runs 73-74): the wait and the arrival together cost ~0.09 ms
// per one-row step; the arrival moved here gave back ~0.015 ms.
__device__ __forceinline__ void leave_shrink_counters(const GemvLora& l) {
  if (atomicAdd(&l.counters[1], 1) == static_cast<int32_t>(gridDim.x) - 1) {
    l.counters[0] = 0;
    l.counters[1] = 0;
  }
}

// The epilogue of a group runs in warp 0: output o = lane / kLanes (token o / kRows, feature o % kRows), its kLanes
// lanes q each taking the rank's 8-wide words q, q + kLanes, ..., then a shuffle sum.
template <int M>
struct Epilogue {
  static constexpr int kOutputs = M * kRows;
  static constexpr int kLanes = kOutputs <= 4 ? 8 : (kOutputs <= 8 ? 4 : 2);
  static_assert(kOutputs * kLanes <= 32, "the epilogue fits in warp 0");
};

// What a block keeps in shared memory for its projection groups: its tokens' slot lookups, t of every (token,
// module), the warps' partial sums of two groups, and the B rows of three groups (the current one, the next in
// flight, and the first, whose epilogue waits for the second group).
template <int M>
struct LoraSmem {
  float partial[2][kThreads / 32][kGemvMaxRows * kRows];
  int32_t rank[kLoraMaxModules][M];
  const bf16* b[kLoraMaxModules][M];
  __align__(16) float t[M][kLoraMaxModules][kLoraMaxRank];
  __align__(16) bf16 brow[3][Epilogue<M>::kOutputs][kLoraMaxRank];
};

// The B row that output feature `col` of token `mi` adds (rank 0: none).
struct BRow {
  const bf16* b;
  int m, rank;
  bool copied;  // copied into shared memory by cp.async (16-byte words); else read in place
};

template <int M>
__device__ __forceinline__ BRow b_row(const GemvLora& l, const LoraSmem<M>& sm, int mi, int64_t col) {
  BRow r{nullptr, 0, 0, false};
  while (r.m < l.num_modules && !(col >= l.col[r.m] && col < l.col[r.m] + l.out_dim[r.m])) ++r.m;
  if (r.m == l.num_modules) return r;
  r.rank = sm.rank[r.m][mi];
  if (r.rank <= 0) return r;
  r.b = sm.b[r.m][mi] + (col - l.col[r.m]) * r.rank;
  r.copied = r.rank % 8 == 0 && (reinterpret_cast<uintptr_t>(r.b) & 15) == 0;
  return r;
}

// Warp 0: each lane's words of its output's B row in `group` into buffer `buf` (cp.async; read back by the lane).
template <int M, bool kSilu>
__device__ __forceinline__ void stage_b(const GemvLora& l, LoraSmem<M>& sm, int64_t group, int64_t n, int buf) {
  using E = Epilogue<M>;
  const int o = threadIdx.x / E::kLanes, q = threadIdx.x % E::kLanes;
  if (o >= E::kOutputs || !has_col<kSilu>(group, o % kRows, n)) return;
  const BRow r = b_row<M>(l, sm, o / kRows, group_col<kSilu>(group, o % kRows, n));
  if (r.copied)
    for (int j = 8 * q; j < r.rank; j += 8 * E::kLanes) cp_async16(&sm.brow[buf][o][j], r.b + j, true);
}

// Warp 0: the group's outputs, v (the projection's sum, in each output's lane 0) plus sum over the rank of
// bf16(t[j]) B[col][j], rounded once; with kSilu, silu(gate) * up of each gate output and the up output
// kGroupFeatures after it, rounded once.
template <int M, bool kSilu>
__device__ __forceinline__ void store_outputs(const GemvLora& l, const LoraSmem<M>& sm, int64_t group, int64_t n,
                                              int buf, float v, bf16* __restrict__ out, int64_t ldo) {
  using E = Epilogue<M>;
  const int o = threadIdx.x / E::kLanes, q = threadIdx.x % E::kLanes;
  const bool mine = o < E::kOutputs && has_col<kSilu>(group, o % kRows, n);
  float acc = 0.0f;
  if (mine) {
    const BRow r = b_row<M>(l, sm, o / kRows, group_col<kSilu>(group, o % kRows, n));
    const float* t = sm.t[o / kRows][r.m];
    if (r.copied) {
      for (int j = 8 * q; j < r.rank; j += 8 * E::kLanes) {
        float w[8];
        unpack8(*reinterpret_cast<const uint4*>(&sm.brow[buf][o][j]), w);
        const float4 t0 = *reinterpret_cast<const float4*>(t + j), t1 = *reinterpret_cast<const float4*>(t + j + 4);
        const float tv[8] = {t0.x, t0.y, t0.z, t0.w, t1.x, t1.y, t1.z, t1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = fmaf(__bfloat162float(__float2bfloat16_rn(tv[i])), w[i], acc);
      }
    } else {
      for (int j = q; j < r.rank; j += E::kLanes)
        acc = fmaf(__bfloat162float(__float2bfloat16_rn(t[j])), __bfloat162float(r.b[j]), acc);
    }
  }
#pragma unroll
  for (int off = E::kLanes / 2; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if constexpr (kSilu) {
    const float up = __shfl_down_sync(0xffffffffu, v + acc, kGroupFeatures<kSilu> * E::kLanes);
    if (mine && q == 0 && o % kRows < kGroupFeatures<kSilu>)
      out[o / kRows * ldo + group_col<kSilu>(group, o % kRows, n)] = __float2bfloat16_rn(silu(v + acc) * up);
  } else {
    if (mine && q == 0) out[o / kRows * ldo + group_col<kSilu>(group, o % kRows, n)] = __float2bfloat16_rn(v + acc);
  }
}

// A block's projection groups g0, g0 + stride, ... Nothing in a group's epilogue waits on memory: the next group's
// weights and B rows are issued before it (B by cp.async into shared memory), and t is copied once; the first
// group's epilogue waits for the second group, so that the wait for the shrink units and the copy of t hide under
// the second group's weight stream. Every block passes wait_for_shrink once, groups or not. kSilu: n = inter and
// out [tokens, inter] takes silu(gate) * up (group_col).
template <int M, bool kSilu>
__device__ void proj_groups(const bf16* __restrict__ x, int64_t ldx, const bf16* __restrict__ w, int64_t ldw,
                            const bf16* __restrict__ bias, bf16* __restrict__ out, int64_t ldo, int64_t n, int64_t k,
                            const GemvLora& l, int64_t g0, int64_t stride, LoraSmem<M>& sm) {
  const int64_t groups = (n + kGroupFeatures<kSilu> - 1) / kGroupFeatures<kSilu>;
  using E = Epilogue<M>;
  const bool warp0 = threadIdx.x < 32;  // the epilogue's warp
  const int o = threadIdx.x / E::kLanes;  // its output (lane 0 of each output holds the projection's sum)
  RowStream s;
  s.chunks = k / 8;
  auto rows_of = [&](int64_t group) { s.set_group_rows<kSilu>(w, ldw, group, n); };
  auto sum_of = [&](int64_t group, int pbuf) {
    if (o >= E::kOutputs || threadIdx.x % E::kLanes != 0 || !has_col<kSilu>(group, o % kRows, n)) return 0.0f;
    return projection_sum(bias, group_col<kSilu>(group, o % kRows, n), sm.partial[pbuf], o);
  };
  if (g0 >= groups) {
    if (threadIdx.x == 0) wait_for_shrink(l);
    return;
  }
  rows_of(g0);
  s.load(threadIdx.x);  // the weights never depend on the previous kernel
  if (threadIdx.x < M * l.num_modules) {  // nor do the slot tables and B (written before the step)
    const int mi = threadIdx.x % M, m = threadIdx.x / M;
    const int slot = token_slot(l, mi);
    const int rank = slot >= 0 ? l.ranks[m][slot] : 0;
    sm.rank[m][mi] = rank;
    sm.b[m][mi] = rank > 0 ? static_cast<const bf16*>(l.b[m][slot]) : nullptr;
  }
  __syncthreads();
  if (warp0) stage_b<M, kSilu>(l, sm, g0, n, 0);
  cp_async_commit();
  pdl_wait();
  pdl_launch_dependents();
  float first = 0.0f;  // the first group's sum (each output's lane 0), until its epilogue
  int it = 0;
  for (int64_t g = g0; g < groups; g += stride, ++it) {
    const int pbuf = it & 1;
    float acc[M][kRows] = {};
    s.run<M>(x, ldx, acc);
    warp_partials<M>(acc, sm.partial[pbuf]);
    const bool next = g + stride < groups;
    if (next) {
      rows_of(g + stride);
      s.load(threadIdx.x);
      if (warp0) stage_b<M, kSilu>(l, sm, g + stride, n, (it + 1) % 3);
    }
    cp_async_commit();
    if (it == 0 && threadIdx.x == 0) wait_for_shrink(l);  // under the loads just issued
    cp_async_wait<1>();  // all but the group just committed: this group's B (and t, from the first iteration)
    __syncthreads();     // partial[pbuf] complete; partial[pbuf ^ 1] free (its epilogue came before)
    if (it == 0) {
      constexpr int kWords = kLoraMaxRank / 4;  // t, through L2 (other blocks of this launch wrote it)
      for (int i = threadIdx.x; i < M * l.num_modules * kWords; i += kThreads) {
        const int word = i % kWords, m = i / kWords % l.num_modules, mi = i / (kWords * l.num_modules);
        if (4 * word < sm.rank[m][mi])
          cp_async16(&sm.t[mi][m][4 * word],
                     l.t + (static_cast<int64_t>(mi) * l.num_modules + m) * kLoraMaxRank + 4 * word, true);
      }
      cp_async_commit();
      if (next) {
        if (warp0) first = sum_of(g, pbuf);
        continue;
      }
      cp_async_wait<0>();
      __syncthreads();
    }
    if (!warp0) continue;
    if (it == 1) store_outputs<M, kSilu>(l, sm, g - stride, n, 0, first, out, ldo);
    store_outputs<M, kSilu>(l, sm, g, n, it % 3, sum_of(g, pbuf), out, ldo);
  }
}

// Every block of the grid is resident at once (gridDim.x <= resident block slots); see the top comment. 2 blocks
// per SM for every row count (up to 128 registers: at one row and 4 blocks per SM, 64 registers spilled).
template <int M, bool kSilu>
__global__ void __launch_bounds__(kThreads, 2)
    gemv_lora_kernel(const bf16* __restrict__ x, int64_t ldx, const bf16* __restrict__ w, int64_t ldw,
                     const bf16* __restrict__ bias, bf16* __restrict__ out, int64_t ldo, int64_t n, int64_t k,
                     GemvLora l) {
  __shared__ LoraSmem<M> sm;
  const int64_t block = blockIdx.x, blocks = gridDim.x;
  int64_t item = block;
  if (item < l.shrink_units) {
    // The first group's weight rows into L2 while the shrink unit runs (they never depend on the previous kernel).
    const int64_t g = item + blocks - l.shrink_units;
    if (threadIdx.x < kRows && has_col<kSilu>(g, threadIdx.x, n))
      prefetch_l2(w + group_col<kSilu>(g, threadIdx.x, n) * ldw, static_cast<uint32_t>(k * 2));
    shrink_block<M>(x, ldx, k, l, static_cast<int>(item), sm.partial[0]);
    item += blocks;
  }
  proj_groups<M, kSilu>(x, ldx, w, ldw, bias, out, ldo, n, k, l, item - l.shrink_units, blocks, sm);
  if (threadIdx.x == 0) leave_shrink_counters(l);
}

// kSilu: w = [W_gate; W_up] with n = inter output features, each group two of them (their gate and up rows), and
// out = silu(gate) * up, bf16: the gate/up product never reaches memory (batches of 1-2 rows; the skinny GEMM's
// epilogue does the same for larger ones).
template <int M, bool kSilu>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const bf16* __restrict__ x, int64_t ldx,
                                                         const bf16* __restrict__ w, int64_t ldw,
                                                         const bf16* __restrict__ bias, void* __restrict__ out,
                                                         int64_t ldo, bool out_f32, int64_t n, int64_t k) {
  __shared__ float partial[2][kThreads / 32][kGemvMaxRows * kRows];
  constexpr int kFeatures = kGroupFeatures<kSilu>;
  const int64_t groups = (n + kFeatures - 1) / kFeatures, stride = gridDim.x;
  RowStream s;
  s.chunks = k / 8;
  auto rows_of = [&](int64_t group) { s.set_group_rows<kSilu>(w, ldw, group, n); };
  rows_of(blockIdx.x);
  // The weights never depend on the previous kernel: the first round is in flight before waiting for it.
  s.load(threadIdx.x);
  pdl_wait();
  pdl_launch_dependents();
  int buf = 0;
  for (int64_t g = blockIdx.x; g < groups; g += stride, buf ^= 1) {
    float acc[M][kRows] = {};
    s.run<M>(x, ldx, acc);
    warp_partials<M>(acc, partial[buf]);
    if (g + stride < groups) {
      rows_of(g + stride);
      s.load(threadIdx.x);
    }
    __syncthreads();  // partial[buf] complete; partial[buf ^ 1] free (read before this barrier)
    if (threadIdx.x >= M * kFeatures) continue;
    const int mi = threadIdx.x / kFeatures, r = threadIdx.x % kFeatures;
    const int64_t col = g * kFeatures + r;
    if (col >= n) continue;
    if constexpr (kSilu) {
      const float gate = projection_sum(bias, col, partial[buf], mi * kRows + r);
      const float up = projection_sum(bias ? bias + n : nullptr, col, partial[buf], mi * kRows + kFeatures + r);
      static_cast<bf16*>(out)[mi * ldo + col] = __float2bfloat16_rn(silu(gate) * up);
    } else {
      const float v = projection_sum(bias, col, partial[buf], threadIdx.x);
      if (out_f32) {
        static_cast<float*>(out)[mi * ldo + col] = v;
      } else {
        static_cast<bf16*>(out)[mi * ldo + col] = __float2bfloat16_rn(v);
      }
    }
  }
}

// Resident blocks per SM of a kernel of kThreads threads.
template <typename Kernel>
int blocks_per_sm(Kernel kernel) {
  int b = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, kThreads, 0) != cudaSuccess) b = 1;
  return std::max(b, 1);
}

// A block per resident block slot, at most one per group of the kernel's output features.
template <bool kSilu>
cudaError_t run_gemv(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out, int64_t ldo,
                     bool out_f32, int64_t m, int64_t n, int64_t k, int num_sms, Stream stream) {
  const auto* xs = static_cast<const bf16*>(x);
  const auto* ws = static_cast<const bf16*>(w);
  const auto* bs = static_cast<const bf16*>(bias);
  auto run = [&](auto kernel, int per_sm) {
    const int64_t blocks =
        std::min<int64_t>(ceil_div(n, kGroupFeatures<kSilu>), static_cast<int64_t>(num_sms) * per_sm);
    return launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, xs, ldx, ws, ldw, bs, out,
                  ldo, out_f32, n, k);
  };
  static const int per_sm[4] = {blocks_per_sm(gemv_kernel<1, kSilu>), blocks_per_sm(gemv_kernel<2, kSilu>),
                                blocks_per_sm(gemv_kernel<3, kSilu>), blocks_per_sm(gemv_kernel<4, kSilu>)};
  switch (m) {
    case 1: return run(gemv_kernel<1, kSilu>, per_sm[0]);
    case 2: return run(gemv_kernel<2, kSilu>, per_sm[1]);
    case 3: return run(gemv_kernel<3, kSilu>, per_sm[2]);
    default: return run(gemv_kernel<4, kSilu>, per_sm[3]);
  }
}

// launch_gemv_lora, or with kSilu launch_gemv_lora_silu: the modules' columns are their ys' offsets in `product`
// (out itself, or the gate_up product of 2 n columns that never reaches memory), n the output's features.
template <bool kSilu>
cudaError_t run_gemv_lora(const LoraArgs& a, const void* w, int64_t ldw, const void* bias, const void* product,
                          void* out, int64_t ldo, int64_t n, float* scratch, int32_t* counters, int num_sms,
                          Stream stream) {
  GemvLora l{};
  l.seg_start = a.seg_start;
  l.seg_slot = a.seg_slot;
  l.num_segments = a.num_segments;
  l.num_slots = a.num_slots;
  l.num_modules = a.num_modules;
  for (int i = 0; i < a.num_modules; ++i) {
    l.a[i] = a.m[i].a;
    l.b[i] = a.m[i].b;
    l.ranks[i] = a.m[i].ranks;
    l.col[i] = static_cast<const bf16*>(a.m[i].y) - static_cast<const bf16*>(product);
    l.out_dim[i] = a.m[i].out_dim;
  }
  l.t = scratch;
  l.counters = counters;
  const auto* xs = static_cast<const bf16*>(a.x);
  const auto* ws = static_cast<const bf16*>(w);
  const auto* bs = static_cast<const bf16*>(bias);
  auto* os = static_cast<bf16*>(out);
  // A block per resident block slot (all of them resident: blocks wait for the shrink units), fewer when there
  // are fewer work items; splits so that the units are every block's first item at most.
  auto run = [&](auto kernel, int blocks_per_sm) {
    const int64_t slots = static_cast<int64_t>(num_sms) * blocks_per_sm, units = a.num_segments * a.num_modules;
    l.splits = static_cast<int32_t>(std::clamp<int64_t>(slots / units, 1, kShrinkSplits));
    l.shrink_units = static_cast<int32_t>(units * l.splits);
    if (l.shrink_units > slots) return cudaErrorInvalidConfiguration;
    const int64_t blocks = std::min<int64_t>(slots, l.shrink_units + ceil_div(n, kGroupFeatures<kSilu>));
    return launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, xs, a.x_ld, ws, ldw, bs, os,
                  ldo, n, a.in_dim, l);
  };
  static const int per_sm[4] = {
      blocks_per_sm(gemv_lora_kernel<1, kSilu>), blocks_per_sm(gemv_lora_kernel<2, kSilu>),
      blocks_per_sm(gemv_lora_kernel<3, kSilu>), blocks_per_sm(gemv_lora_kernel<4, kSilu>)};
  switch (a.num_tokens) {
    case 1: return run(gemv_lora_kernel<1, kSilu>, per_sm[0]);
    case 2: return run(gemv_lora_kernel<2, kSilu>, per_sm[1]);
    case 3: return run(gemv_lora_kernel<3, kSilu>, per_sm[2]);
    default: return run(gemv_lora_kernel<4, kSilu>, per_sm[3]);
  }
}

}  // namespace

bool gemv_supported(int64_t m, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

cudaError_t launch_gemv(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                        int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, int num_sms, Stream stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  if (!out || !gemv_supported(m, k, x, ldx, w, ldw) || ldo < n) return cudaErrorInvalidValue;
  return run_gemv<false>(x, ldx, w, ldw, bias, out, ldo, out_f32, m, n, k, num_sms, stream);
}

cudaError_t launch_gemv_silu(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                             int64_t ldo, int64_t m, int64_t inter, int64_t k, int num_sms, Stream stream) {
  if (m == 0 || inter == 0) return cudaSuccess;
  if (!out || !gemv_supported(m, k, x, ldx, w, ldw) || ldo < inter) return cudaErrorInvalidValue;
  return run_gemv<true>(x, ldx, w, ldw, bias, out, ldo, false, m, inter, k, num_sms, stream);
}

bool gemv_lora_supported(const LoraArgs& a, const void* w, int64_t ldw, const void* out, int64_t ldo, int64_t n) {
  if (!gemv_supported(a.num_tokens, a.in_dim, a.x, a.x_ld, w, ldw) || !lora_supported(a) || !out || ldo < n)
    return false;
  if (a.num_segments > a.num_tokens) return false;
  for (int i = 0; i < a.num_modules; ++i) {  // each module's y a column slice of out
    const auto off = static_cast<const bf16*>(a.m[i].y) - static_cast<const bf16*>(out);
    if (a.m[i].y_ld != ldo || off < 0 || off + a.m[i].out_dim > n) return false;
  }
  return true;
}

int64_t gemv_lora_scratch_floats(const LoraArgs& a) {
  return static_cast<int64_t>(a.num_tokens) * a.num_modules * kLoraMaxRank;
}

cudaError_t launch_gemv_lora(const LoraArgs& a, const void* w, int64_t ldw, const void* bias, void* out, int64_t ldo,
                             int64_t n, float* scratch, int32_t* counters, int num_sms, Stream stream) {
  if (a.num_tokens == 0 || n == 0) return cudaSuccess;
  if (!gemv_lora_supported(a, w, ldw, out, ldo, n) || !a.seg_start || !a.seg_slot || !scratch || !counters)
    return cudaErrorInvalidValue;
  return run_gemv_lora<false>(a, w, ldw, bias, out, out, ldo, n, scratch, counters, num_sms, stream);
}

cudaError_t launch_gemv_lora_silu(const LoraArgs& a, const void* w, int64_t ldw, const void* bias, const void* gate_up,
                                  int64_t gate_up_ld, void* out, int64_t ldo, int64_t inter, float* scratch,
                                  int32_t* counters, int num_sms, Stream stream) {
  if (a.num_tokens == 0 || inter == 0) return cudaSuccess;
  if (!gemv_lora_supported(a, w, ldw, gate_up, gate_up_ld, 2 * inter) || !out || ldo < inter || !a.seg_start ||
      !a.seg_slot || !scratch || !counters)
    return cudaErrorInvalidValue;
  return run_gemv_lora<true>(a, w, ldw, bias, gate_up, out, ldo, inter, scratch, counters, num_sms, stream);
}

}  // namespace ls::cuda
