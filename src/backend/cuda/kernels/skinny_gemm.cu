// skinny_gemm.cu: out = x W^T for decode batches of up to 128 rows of x, where the product is a stream over the
// weights and the whole game is keeping enough weight bytes in flight to run at the copy rate; and the same
// with the MLP's SiLU-mul in the epilogue (the gate/up product never reaches memory).
//
// A block is persistent (one per SM, ~200-220 KB of shared memory) and walks its share of work units. A unit is
// 128 staged weight rows (128 output features, or 64 gate and the 64 matching up rows) times a slice of K;
// narrow outputs split K so that at least 70% of the SMs stream. One producer thread moves each 128-wide K step
// of the unit's weight rows and of x into a ring of shared-memory stages with the tensor memory accelerator
// (2-D tensor-map copies of 64-column boxes, 128-byte swizzle, out-of-range rows and columns zero-filled;
// completion counted in bytes on the stage's mbarrier), so the copy engine, not registers, holds the bytes in
// flight: 4-5 stages of 32 KB of weights per SM. Eight consumer warps each own an m16 tile of weight rows; they
// read fragments with ldmatrix (the swizzle makes them conflict-free) and multiply on the tensor cores (mma.sync
// m16n8k16, weights as A, x rows as the n columns; at 65-128 rows two warpgroups issue wgmma on the stage
// instead), then hand the stage back through its "empty" mbarrier. The
// weights never depend on the previous kernel, so the producer fills the ring before waiting on it
// (programmatic dependent launch): the stream starts while the previous kernel drains.
// Split-K partials go to fp32 scratch; the last split of a tile to arrive (arrival counter) sums them in a fixed
// order (deterministic), adds the bias, writes the output and zeroes its counter for the next launch.
// With LoRA (the SiLU kernel at up to 8 rows), the adapters' deltas join the gate/up accumulators before the
// activation, from the t that the LoRA shrink (lora_shrink.cu, the previous kernel) left: see "The LoRA epilogue"
// below.
// History (bench/cuda_engine_notes.md, run 8): one 256-byte cp.async.bulk per row instead of tensor maps ran at
// ~850 GB/s (the copy engine's per-copy cost); 256-row tiles and 64-wide K stages were slower at every row count.
#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/lora_delta.cuh"
#include "backend/cuda/kernels/skinny_gemm.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

namespace ls::cuda {
namespace {

constexpr int kConsumerWarps = 8;
constexpr int kThreads = (kConsumerWarps + 1) * 32;  // + the producer warp
constexpr int kConsumerThreads = kConsumerWarps * 32;
constexpr int kBoxK = 64;  // k per tensor-map box: 128 bytes, the swizzle span
constexpr int kSmemLimit = 227 * 1024;
constexpr int kMaxSplits = 4;
constexpr int kReduceItems = 4;  // float4 partial groups a thread reduces at once

// NT n-tiles of 8 rows of x (m <= 8 NT). SILU: the gate/up product with SiLU-mul in the epilogue: a unit's 128
// staged weight rows are 64 gate rows and the 64 up rows of the same features (two boxes), and each warp's m16
// tile takes 8 of each, so that a thread's C fragment holds gate and up of the same feature and x row.
// (Measured and dropped: 256-row tiles, 64-wide K stages: slower at every row count.)
template <int NT_, bool SILU>
struct Cfg {
  static constexpr int NT = NT_, kBoxesPerStage = 2;
  static constexpr bool kSilu = SILU;
  // 65-128 rows: wgmma from shared memory (each warp re-reading all of x by ldmatrix outruns shared memory there;
  // bench/cuda_engine_notes.md, run 46). Plain products only. Measured slower than tuned cuBLASLt (run 49: every
  // stage streams as many bytes of x from L2 as of weights), so only Skinny::kAll takes it.
  static constexpr bool kWgmma = NT == 16;
  static_assert(!kWgmma || !SILU, "the SiLU epilogue pairs gate and up rows within a warp");
  static constexpr int kTileN = 16 * kConsumerWarps;  // staged weight rows per unit
  static constexpr int kOutN = SILU ? kTileN / 2 : kTileN;  // output features per unit
  static constexpr int kWBoxRows = SILU ? kTileN / 2 : kTileN;
  static constexpr int kTileK = kBoxK * kBoxesPerStage;  // k per stage
  static constexpr int kXRows = NT < 2 ? 16 : 8 * NT;      // ldmatrix.x4 reads two n-tiles
  static constexpr int kWBoxBytes = kTileN * 128, kXBoxBytes = kXRows * 128;  // multiples of 1024 (swizzle atom)
  static constexpr int kStageBytes = kBoxesPerStage * (kWBoxBytes + kXBoxBytes);
  static constexpr int kFit = (kSmemLimit - 1024 - 256) / kStageBytes;
  static constexpr int kStages = kFit > 6 ? 6 : kFit;
  static constexpr int kSmemBytes = 1024 + kStages * kStageBytes + 2 * kStages * 8;  // + alignment slack
};

struct SkinnyArgs {
  CUtensorMap w_map;  // weights [n rows][k], boxes of kWBoxRows rows x 64 k (SiLU: [2 n rows], gate then up)
  CUtensorMap x_map;  // x [m rows][k], boxes of kXRows rows x 64 k
  const bf16* x;
  int64_t ldx;
  const bf16* w;
  int64_t ldw;
  const bf16* bias;
  void* out;
  int64_t ldo;
  bool out_f32;
  int m, n, k;  // n: output features (SiLU: the intermediate size; the weights have 2 n rows)
  int tiles, splits, k_steps, steps_per_split;
  float* partials;    // [splits][m][tiles * kOutN] fp32 (splits > 1 only; never with SiLU)
  int32_t* arrivals;  // [tiles], zero between launches
  LoraDelta lora;    // the LoRA kernels only
};

__device__ __forceinline__ uint64_t l2_policy_evict_first() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}
__device__ __forceinline__ uint64_t l2_policy_evict_last() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}
// Copies the box at (k0, row0) of a 2-D tensor map into shared memory (1024-byte aligned); the stage's mbarrier
// counts its bytes (the whole box, zero-filled past the tensor's edges) when they land.
__device__ __forceinline__ void tensor_copy(void* dst, const CUtensorMap* map, int k0, int row0, uint64_t* bar,
                                            uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint "
      "[%0], [%1, {%2, %3}], [%4], %5;" ::"r"(smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(k0), "r"(row0), "r"(smem_u32(bar)), "l"(policy)
      : "memory");
}
// wgmma (the 65-128 row configuration): the warpgroup's 64 weight rows as A and the stage's x rows as B, both read
// by the tensor cores from the swizzled stage through matrix descriptors (K-major, 128-byte swizzle: 8-row atoms
// of 1024 bytes, so the stride between atoms is 1024 bytes; a k16 step inside a 64-wide box moves the start by 32
// bytes). The fp32 accumulator fragment of m64nNk16 has mma.sync's m16n8 layout per warp and n-tile, so the
// epilogue is shared.
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  return (uint64_t{smem_u32(p)} & 0x3FFFF) >> 4 | uint64_t{1} << 16 | uint64_t{1024 >> 4} << 32 | uint64_t{1} << 62;
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
// d += A B^T for A = 64 x 16 and B = 128 x 16 (both K-major in shared memory).
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[16][4], uint64_t a, uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n}"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]),
        "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
        "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]),
        "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
        "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
        "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
        "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
        "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]),
        "+f"(d[13][2]), "+f"(d[13][3]), "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
        "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
      : "l"(a), "l"(b), "r"(1));
}

__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumerThreads) : "memory");
}

__device__ __forceinline__ void store_out(const SkinnyArgs& p, int row, int col, float v) {
  if (p.bias) v += __bfloat162float(p.bias[col]);
  if (p.out_f32) {
    static_cast<float*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = v;
  } else {
    static_cast<bf16*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = __float2bfloat16_rn(v);
  }
}

// Work unit u: its feature tile, its split of K and that split's K steps [step_begin, step_end). A block takes
// units blockIdx.x, + gridDim.x, ...; producer and consumers walk them in the same order.
struct Unit {
  int tile, split, step_begin, step_end;
};
__device__ __forceinline__ Unit unit_at(const SkinnyArgs& p, int u) {
  const int split = u % p.splits;
  return {u / p.splits, split, split * p.steps_per_split, min(p.k_steps, (split + 1) * p.steps_per_split)};
}

// Calls f(step_index, tile, k0) for each K step of each unit the block owns, in order, while f returns true.
template <class C, typename F>
__device__ __forceinline__ void for_each_step(const SkinnyArgs& p, F&& f) {
  int i = 0;
  for (int u = blockIdx.x; u < p.tiles * p.splits; u += gridDim.x) {
    const Unit w = unit_at(p, u);
    for (int s = w.step_begin; s < w.step_end; ++s, ++i)
      if (!f(i, w.tile, s * C::kTileK)) return;
  }
}

// The producer thread: fills stage i % kStages for the block's i-th K step once its consumers released it.
// x is the kernel before the previous one's output when LORA: the previous kernel is the LoRA shrink, which lets
// this kernel launch only after its first block has waited for that kernel (lora_shrink.cu), so x is complete and
// visible at launch, and the copies of x need not wait for the shrink (only the epilogue's t does).
template <class C, bool LORA>
__device__ void produce(const SkinnyArgs& p, char* ring, uint64_t* full, uint64_t* empty) {
  const uint64_t weight_policy = l2_policy_evict_first(), x_policy = l2_policy_evict_last();
  auto stage_of = [&](int i) { return ring + (i % C::kStages) * C::kStageBytes; };
  auto issue_w = [&](int i, int tile, int k0) {
    for (int b = 0; b < C::kBoxesPerStage; ++b) {
      char* dst = stage_of(i) + b * C::kWBoxBytes;
      tensor_copy(dst, &p.w_map, k0 + b * kBoxK, tile * C::kOutN, &full[i % C::kStages], weight_policy);
      if (C::kSilu)  // the up rows of the same features
        tensor_copy(dst + C::kWBoxBytes / 2, &p.w_map, k0 + b * kBoxK, p.n + tile * C::kOutN, &full[i % C::kStages],
                    weight_policy);
    }
  };
  auto issue_x = [&](int i, int k0) {
    for (int b = 0; b < C::kBoxesPerStage; ++b)
      tensor_copy(stage_of(i) + C::kBoxesPerStage * C::kWBoxBytes + b * C::kXBoxBytes, &p.x_map, k0 + b * kBoxK, 0,
                  &full[i % C::kStages], x_policy);
  };
  auto expect = [&](int i) { mbar_arrive_expect_tx(&full[i % C::kStages], C::kStageBytes); };
  // The first ring's worth of weights goes out before the previous kernel's results are waited for.
  for_each_step<C>(p, [&](int i, int tile, int k0) {
    if (i >= C::kStages) return false;
    expect(i);
    issue_w(i, tile, k0);
    return true;
  });
  if constexpr (!LORA) pdl_wait();
  pdl_launch_dependents();
  for_each_step<C>(p, [&](int i, int tile, int k0) {
    if (i >= C::kStages) {
      mbar_wait(&empty[i % C::kStages], ((i / C::kStages) & 1) ^ 1);
      expect(i);
      issue_w(i, tile, k0);
    }
    issue_x(i, k0);
    return true;
  });
}

// The last split of a tile to arrive: sums the splits' partials in split order, adds the bias, writes the output.
// Each thread loads all its partials before adding any (L2 hits; a chain of dependent loads here would hold the
// ring still at the end of the kernel).
template <class C>
__device__ void reduce_tile(const SkinnyArgs& p, int tile) {
  constexpr int kGroups = C::kOutN / 4;  // float4 groups per x row of the tile
  const int n_pad = p.tiles * C::kOutN;
  const int64_t split_stride = static_cast<int64_t>(p.m) * n_pad / 4;
  const int total = p.m * kGroups;
  for (int base = threadIdx.x; base < total; base += kConsumerThreads * kReduceItems) {
    float4 part[kReduceItems][kMaxSplits];
#pragma unroll
    for (int it = 0; it < kReduceItems; ++it) {
      const int e = base + it * kConsumerThreads;
      if (e >= total) continue;
      const float4* src = reinterpret_cast<const float4*>(p.partials) +
                          (static_cast<int64_t>(e / kGroups) * n_pad + tile * C::kOutN) / 4 + e % kGroups;
#pragma unroll
      for (int sp = 0; sp < kMaxSplits; ++sp)
        if (sp < p.splits) part[it][sp] = __ldcg(src + sp * split_stride);
    }
#pragma unroll
    for (int it = 0; it < kReduceItems; ++it) {
      const int e = base + it * kConsumerThreads;
      if (e >= total) continue;
      float4 v = part[it][0];
#pragma unroll
      for (int sp = 1; sp < kMaxSplits; ++sp)
        if (sp < p.splits) {
          v.x += part[it][sp].x;
          v.y += part[it][sp].y;
          v.z += part[it][sp].z;
          v.w += part[it][sp].w;
        }
      const int row = e / kGroups, f = tile * C::kOutN + (e % kGroups) * 4;
      const float vals[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (f + j < p.n) store_out(p, row, f + j, vals[j]);
    }
  }
}

// The LoRA epilogue (SiLU kernel), on the tensor cores: a warp's m16 tile (8 gate and the 8 matching up features)
// gains B_slot t^T per segment of x rows sharing a slot, t in passes of kLoraPass ranks as the mma's k (bf16,
// summed over the shrink's K splits, in shared memory; rows outside the segment read zeros), the segment's B rows
// as the A operand straight from global memory (4-byte words, kLoraSegBatch segments' words in flight at once).
// One adapter for the batch costs one A load and 2 NT products per warp and unit; a slot per row, a segment each.
// Odd ranks or unaligned B take an element-wise path on the CUDA cores.
constexpr int kLoraPass = 16;
constexpr int kLoraTStride = 24;    // t row stride in bf16: the b-fragment reads of 8 rows x 4 lanes hit 32 banks
constexpr int kLoraSegBatch = 8;

template <int R>
struct LoraSmem {
  // Per x row: module j's rank (0: none) and B, for staging t and the element-wise path.
  const bf16* b[kSkinnyLoraModules][R];
  int32_t rank[kSkinnyLoraModules][R];
  // The segments (rows [seg_begin, seg_end) of one slot that some module adapts), in any order, with each
  // module's B and rank for the tensor-core path (0: not adapted there, or element-wise).
  int32_t seg_begin[R], seg_end[R];
  const bf16* seg_b[kSkinnyLoraModules][R];
  int32_t seg_rank[kSkinnyLoraModules][R];
  int32_t num_segs, max_rank;
  bool any_scalar;  // a row's B is read element by element
  __align__(16) bf16 t[kSkinnyLoraModules][R][kLoraTStride];
};
struct NoLoraSmem {};

__device__ __forceinline__ bool lora_mma_path(int rank, const bf16* b) {
  return rank % 2 == 0 && (reinterpret_cast<uintptr_t>(b) & 3) == 0;
}

// Consumers, before the programmatic wait (the segments and slot tables do not depend on the previous kernel).
template <int R>
__device__ void lora_rows(const SkinnyArgs& p, LoraSmem<R>& s) {
  const LoraDelta& l = p.lora;
  for (int e = threadIdx.x; e < kSkinnyLoraModules * R; e += kConsumerThreads) {
    s.rank[e / R][e % R] = 0;
    s.b[e / R][e % R] = nullptr;
  }
  if (threadIdx.x == 0) {
    s.num_segs = 0;
    s.max_rank = 0;
    s.any_scalar = false;
  }
  consumers_sync();
  for (int i = threadIdx.x; i < l.num_segments; i += kConsumerThreads) {
    const int32_t begin = max(l.seg_start[i], 0), end = min(l.seg_start[i + 1], p.m), slot = l.seg_slot[i];
    if (slot < 0 || slot >= l.num_slots || begin >= end) continue;
    int rank[kSkinnyLoraModules];
    const bf16* b[kSkinnyLoraModules];
    int most = 0;
#pragma unroll
    for (int j = 0; j < kSkinnyLoraModules; ++j) {
      rank[j] = j < l.num_modules ? delta_rank(l, j, slot) : 0;
      b[j] = rank[j] > 0 ? static_cast<const bf16*>(l.m[j].b[slot]) : nullptr;
      most = max(most, rank[j]);
    }
    if (most == 0) continue;
    const int k = atomicAdd(&s.num_segs, 1);
    s.seg_begin[k] = begin;
    s.seg_end[k] = end;
#pragma unroll
    for (int j = 0; j < kSkinnyLoraModules; ++j) {
      const bool mma = lora_mma_path(rank[j], b[j]);
      s.seg_b[j][k] = b[j];
      s.seg_rank[j][k] = mma ? rank[j] : 0;
      if (rank[j] > 0 && !mma) s.any_scalar = true;
      for (int32_t r = begin; r < end; ++r) {
        s.rank[j][r] = rank[j];
        s.b[j][r] = b[j];
      }
    }
    atomicMax(&s.max_rank, most);
  }
  consumers_sync();
}

// Consumers: t of ranks [r0, r0 + kLoraPass) of every row and module, summed over the splits in order and rounded
// to bf16 (zeros past the row's rank). The loads of up to kStageRound entries (all their splits) are issued before
// any is summed: one or two waits for memory.
template <int R>
__device__ void lora_stage(const LoraDelta& l, int r0, LoraSmem<R>& s) {
  constexpr int kEntries = kSkinnyLoraModules * R * kLoraPass;
  static_assert(kEntries % kConsumerThreads == 0, "the consumers stage t in whole rounds");
  constexpr int kPer = kEntries / kConsumerThreads, kStageRound = kPer < 6 ? kPer : 6;
  static_assert(kPer % kStageRound == 0, "whole rounds");
  for (int i0 = 0; i0 < kPer; i0 += kStageRound) {
    int64_t at[kStageRound];  // -1: past the row's rank
#pragma unroll
    for (int i = 0; i < kStageRound; ++i) {
      const int e = threadIdx.x + (i0 + i) * kConsumerThreads;
      const int j = e / (R * kLoraPass), r = e / kLoraPass % R, c = e % kLoraPass;
      at[i] = r0 + c < s.rank[j][r] ? r * l.row_stride + j * l.module_stride + r0 + c : -1;
    }
    float part[kLoraMaxShrinkSplits][kStageRound];
#pragma unroll
    for (int z = 0; z < kLoraMaxShrinkSplits; ++z)
#pragma unroll
      for (int i = 0; i < kStageRound; ++i)
        part[z][i] = z < l.splits && at[i] >= 0 ? __ldcg(l.t + at[i] + z * l.split_stride) : 0.0f;
#pragma unroll
    for (int i = 0; i < kStageRound; ++i) {
      const int e = threadIdx.x + (i0 + i) * kConsumerThreads;
      float v = 0.0f;
#pragma unroll
      for (int z = 0; z < kLoraMaxShrinkSplits; ++z)
        if (z < l.splits) v += part[z][i];
      s.t[e / (R * kLoraPass)][e / kLoraPass % R][e % kLoraPass] = __float2bfloat16_rn(v);
    }
  }
}

__device__ __forceinline__ uint32_t lora_word(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

// The staged pass's deltas for a warp whose gate features are [f0, f0 + 8) (module jg; up: module ju, columns
// n + f0 on), added to its accumulators: per segment, A = the segment's B rows (gate rows g, up rows g + 8; a lane
// its two words of each), B operand = t of the segment's rows. The host keeps modules 8-column aligned, so a
// warp's 8 gate (and 8 up) features share a module.
template <int NT, int R>
__device__ __forceinline__ void lora_mma(const SkinnyArgs& p, const LoraSmem<R>& s, int f0, int r0,
                                         float (&acc)[NT][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int jg = delta_module(p.lora, f0), ju = delta_module(p.lora, int64_t{p.n} + f0);
  const int64_t cg = jg >= 0 ? f0 + g - p.lora.m[jg].col_begin : 0;
  const int64_t cu = ju >= 0 ? int64_t{p.n} + f0 + g - p.lora.m[ju].col_begin : 0;
  const int k0 = r0 + 2 * t4;
  for (int s0 = 0; s0 < s.num_segs; s0 += kLoraSegBatch) {
    uint32_t w[kLoraSegBatch][4];  // gate k0, gate k0 + 8, up k0, up k0 + 8
#pragma unroll
    for (int i = 0; i < kLoraSegBatch; ++i) {
      const int seg = s0 + i;
      const int rg = seg < s.num_segs && jg >= 0 ? s.seg_rank[jg][seg] : 0;
      const int ru = seg < s.num_segs && ju >= 0 ? s.seg_rank[ju][seg] : 0;
      const bf16* bg = rg > 0 ? s.seg_b[jg][seg] + cg * rg + k0 : nullptr;
      const bf16* bu = ru > 0 ? s.seg_b[ju][seg] + cu * ru + k0 : nullptr;
      w[i][0] = k0 < rg ? lora_word(bg) : 0u;
      w[i][1] = k0 + 8 < rg ? lora_word(bg + 8) : 0u;
      w[i][2] = k0 < ru ? lora_word(bu) : 0u;
      w[i][3] = k0 + 8 < ru ? lora_word(bu + 8) : 0u;
    }
#pragma unroll
    for (int i = 0; i < kLoraSegBatch; ++i) {
      const int seg = s0 + i;
      if (seg >= s.num_segs) break;
      const int begin = s.seg_begin[seg], end = s.seg_end[seg];
      const bool gate = jg >= 0 && r0 < s.seg_rank[jg][seg], up = ju >= 0 && r0 < s.seg_rank[ju][seg];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        if (nt * 8 >= end || nt * 8 + 8 <= begin) continue;
        const int row = nt * 8 + g;
        const bool in = row >= begin && row < end;
        if (gate) {
          const uint32_t a[4] = {w[i][0], 0u, w[i][1], 0u};
          mma_bf16(acc[nt], a, in ? lora_word(&s.t[jg][row][2 * t4]) : 0u,
                   in ? lora_word(&s.t[jg][row][2 * t4 + 8]) : 0u);
        }
        if (up) {
          const uint32_t a[4] = {0u, w[i][2], 0u, w[i][3]};
          mma_bf16(acc[nt], a, in ? lora_word(&s.t[ju][row][2 * t4]) : 0u,
                   in ? lora_word(&s.t[ju][row][2 * t4 + 8]) : 0u);
        }
      }
    }
  }
}

// Module j's delta at x row r, column col of the product (in j's columns), over the staged pass from r0, element
// by element: rows whose rank is odd or whose B is not 4-byte aligned.
template <int R>
__device__ float lora_dot_scalar(const LoraSmem<R>& s, int j, int r, int64_t col, int r0) {
  const int rank = s.rank[j][r];
  const bf16* b = s.b[j][r];
  if (r0 >= rank || lora_mma_path(rank, b)) return 0.0f;
  b += col * rank + r0;
  float sum = 0.0f;
  for (int k = 0; k < min(kLoraPass, rank - r0); ++k)
    sum += __bfloat162float(s.t[j][r][k]) * __bfloat162float(b[k]);
  return sum;
}

template <class C, bool LORA>
__global__ void __launch_bounds__(kThreads, 1) skinny_gemm_kernel(const __grid_constant__ SkinnyArgs p) {
  constexpr int NT = C::NT;
  extern __shared__ char smem_raw[];
  __shared__ std::conditional_t<LORA, LoraSmem<C::kXRows>, NoLoraSmem> lsm;
  char* ring = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);  // the swizzle needs 1024-byte alignment
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + C::kStages * C::kStageBytes);
  uint64_t* empty = full + C::kStages;
  __shared__ bool last;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) {
    for (int s = 0; s < C::kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], kConsumerWarps);
    }
    mbar_init_fence();
  }
  __syncthreads();
  if (warp == kConsumerWarps) {
    if (lane == 0) produce<C, LORA>(p, ring, full, empty);
    return;
  }
  // Outputs and partials may still be read by the previous kernel. With LoRA, the first epilogue waits instead:
  // nothing is written before it, and the shrink's t is read from there on.
  if constexpr (LORA) {
    lora_rows(p, lsm);
  } else {
    pdl_wait();
  }
  const int g = lane >> 2, t4 = lane & 3;
  // ldmatrix rows: A (weights) row a_row (lanes 8-15 and 24-31 give the m16 tile's rows 8-15: the next 8 rows,
  // or with SiLU the up rows), 16-byte chunk half a_half of each k16 step; B (x) row b_row + 8 nt.
  // 128-byte swizzle: chunk c of row r sits at chunk c ^ (r % 8); every row here has r % 8 == lane % 8.
  const int a_row = C::kSilu ? ((lane >> 3) & 1) * (C::kTileN / 2) + warp * 8 + (lane & 7) : warp * 16 + (lane & 15);
  const int a_half = lane >> 4;
  const int b_row = (lane & 7) + ((lane >> 4) << 3), b_half = (lane >> 3) & 1;
  const int sw = lane & 7;
  const int n_pad = p.tiles * C::kOutN;
  float acc[NT][4];
  int i = 0;
  for (int u = blockIdx.x; u < p.tiles * p.splits; u += gridDim.x) {
    const Unit w = unit_at(p, u);
    const int tile = w.tile, split = w.split;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int s = w.step_begin; s < w.step_end; ++s, ++i) {
      const int stage = i % C::kStages;
      mbar_wait(&full[stage], (i / C::kStages) & 1);
      const char* ws = ring + stage * C::kStageBytes;
      const char* xs = ws + C::kBoxesPerStage * C::kWBoxBytes;
      if constexpr (C::kWgmma) {
        // Warpgroup warp / 4 takes weight rows [64 (warp / 4), + 64) of the unit: the warp's m16 rows as before.
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < C::kTileK / 16; ++kk) {
          const int box = kk / 4, step = (kk & 3) * 32 / 16;
          wgmma_m64n128k16(acc, sw128_desc(ws + box * C::kWBoxBytes + (warp / 4) * 64 * 128) + step,
                           sw128_desc(xs + box * C::kXBoxBytes) + step);
        }
        wgmma_commit();
        wgmma_wait_all();
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[stage]);
        continue;
      }
#pragma unroll
      for (int kk = 0; kk < C::kTileK / 16; ++kk) {
        const int box = kk / 4, ca = (((kk & 3) << 1) | a_half) ^ sw, cb = (((kk & 3) << 1) | b_half) ^ sw;
        uint32_t a[4];
        ldmatrix_x4(a, ws + box * C::kWBoxBytes + a_row * 128 + ca * 16);
#pragma unroll
        for (int nt = 0; nt < NT; nt += 2) {
          uint32_t b[4];
          ldmatrix_x4(b, xs + box * C::kXBoxBytes + (nt * 8 + b_row) * 128 + cb * 16);
          mma_bf16(acc[nt], a, b[0], b[1]);
          if (nt + 1 < NT) mma_bf16(acc[nt + 1], a, b[2], b[3]);
        }
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[stage]);
    }

    // C fragment: rows g and g + 8 of the warp's m16 tile (features 16 warp + g and + 8; with SiLU gate and up
    // of feature 8 warp + g), x rows 2 t4 and 2 t4 + 1 of each n-tile.
    if (C::kSilu) {
      const int f = tile * C::kOutN + warp * 8 + g;
      if constexpr (LORA) {
        if (u == blockIdx.x) {  // the block's first epilogue: the shrink is done from here on
          pdl_wait();
          if (lsm.max_rank <= kLoraPass) {  // one pass: t staged once for every unit
            lora_stage(p.lora, 0, lsm);
            consumers_sync();
          }
        }
        const int jg = delta_module(p.lora, f), ju = delta_module(p.lora, int64_t{p.n} + f);
        for (int r0 = 0; r0 < lsm.max_rank; r0 += kLoraPass) {
          if (lsm.max_rank > kLoraPass) {  // a pass of t per pass of every unit
            consumers_sync();
            lora_stage(p.lora, r0, lsm);
            consumers_sync();
          }
          lora_mma<NT>(p, lsm, f - g, r0, acc);
          if (lsm.any_scalar) {
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const int row = nt * 8 + 2 * t4 + e;
                if (row >= p.m) continue;
                if (jg >= 0) acc[nt][e] += lora_dot_scalar(lsm, jg, row, f - p.lora.m[jg].col_begin, r0);
                if (ju >= 0)
                  acc[nt][e + 2] += lora_dot_scalar(lsm, ju, row, int64_t{p.n} + f - p.lora.m[ju].col_begin, r0);
              }
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int row = nt * 8 + 2 * t4 + e;
          if (row >= p.m || f >= p.n) continue;
          float gate = acc[nt][e], up = acc[nt][e + 2];
          if (p.bias) {
            gate += __bfloat162float(p.bias[f]);
            up += __bfloat162float(p.bias[p.n + f]);
          }
          static_cast<bf16*>(p.out)[static_cast<int64_t>(row) * p.ldo + f] =
              __float2bfloat16_rn(silu(gate) * up);
        }
      continue;
    }
    const int f0 = tile * C::kOutN + warp * 16 + g;
    if (p.splits == 1) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = nt * 8 + 2 * t4 + (e & 1), f = f0 + (e >> 1) * 8;
          if (row < p.m && f < p.n) store_out(p, row, f, acc[nt][e]);
        }
      continue;
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = nt * 8 + 2 * t4 + (e & 1), f = f0 + (e >> 1) * 8;
        if (row < p.m) p.partials[(static_cast<int64_t>(split) * p.m + row) * n_pad + f] = acc[nt][e];
      }
    __threadfence();
    consumers_sync();
    if (threadIdx.x == 0) last = atomicAdd(&p.arrivals[tile], 1) == p.splits - 1;
    consumers_sync();
    if (!last) continue;
    __threadfence();
    reduce_tile<C>(p, tile);
    if (threadIdx.x == 0) p.arrivals[tile] = 0;
  }
}

struct Plan {
  int tiles, splits, k_steps, steps_per_split, grid;
};

// Splits of K: the fewest that put at least kMinBusyFraction of the SMs to work (a block keeps ~160 KB in flight,
// so fewer busy SMs still pull the full bandwidth, while every split adds partial sums to write and reduce), at
// least four K steps per split; no empty splits.
constexpr double kMinBusyFraction = 0.7;
constexpr int kMinStepsPerSplit = 4;

Plan plan_for(int64_t n, int64_t k, int num_sms, int tile_n, int tile_k) {
  Plan pl{};
  pl.tiles = static_cast<int>((n + tile_n - 1) / tile_n);
  pl.k_steps = static_cast<int>((k + tile_k - 1) / tile_k);
  const int64_t sms = num_sms > 0 ? num_sms : 1;
  int splits = 1;
  while (splits < kMaxSplits && kMinStepsPerSplit * (splits + 1) <= pl.k_steps &&
         static_cast<double>(pl.tiles) * splits < kMinBusyFraction * static_cast<double>(sms))
    ++splits;
  pl.steps_per_split = (pl.k_steps + splits - 1) / splits;
  pl.splits = (pl.k_steps + pl.steps_per_split - 1) / pl.steps_per_split;
  pl.grid = static_cast<int>(std::min<int64_t>(sms, int64_t{pl.tiles} * pl.splits));
  return pl;
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no link against libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// The tensor map of a row-major bf16 matrix [rows][cols] with leading dimension ld, boxes of box_rows x 64 columns.
// Maps are cached by everything that defines them (a matrix freed and another allocated at the same address with
// the same shape gets the same, still right, map); a server's set is its weights plus a few activation buffers
// per batch size.
cudaError_t tensor_map(const void* base, int64_t rows, int64_t cols, int64_t ld, int box_rows, CUtensorMap* out) {
  using Key = std::tuple<const void*, int64_t, int64_t, int64_t, int>;
  static std::mutex mu;
  static std::map<Key, CUtensorMap> cache;
  const Key key{base, rows, cols, ld, box_rows};
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) {
    *out = it->second;
    return cudaSuccess;
  }
  const PFN_cuTensorMapEncodeTiled_v12000 encode = encode_fn();
  if (!encode) return cudaErrorNotSupported;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};
  const cuuint32_t box[2] = {kBoxK, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  CUtensorMap map;
  if (encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides, box, element_strides,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS)
    return cudaErrorInvalidValue;
  cache.emplace(key, map);
  *out = map;
  return cudaSuccess;
}

template <class C, bool LORA>
cudaError_t launch_typed(SkinnyArgs& p, int grid, Stream stream) {
  static const cudaError_t attr =
      cudaFuncSetAttribute(skinny_gemm_kernel<C, LORA>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes);
  if (attr != cudaSuccess) return attr;
  const int64_t w_rows = C::kSilu ? 2 * int64_t{p.n} : p.n;
  if (cudaError_t e = tensor_map(p.w, w_rows, p.k, p.ldw, C::kWBoxRows, &p.w_map); e != cudaSuccess) return e;
  if (cudaError_t e = tensor_map(p.x, p.m, p.k, p.ldx, C::kXRows, &p.x_map); e != cudaSuccess) return e;
  return launch(skinny_gemm_kernel<C, LORA>, dim3(static_cast<unsigned>(grid)), dim3(kThreads),
                static_cast<size_t>(C::kSmemBytes), stream, p);
}

template <bool SILU>
cudaError_t launch_rows(SkinnyArgs& p, int grid, Stream stream) {
  if (p.m <= 8) return launch_typed<Cfg<1, SILU>, false>(p, grid, stream);
  if (p.m <= 16) return launch_typed<Cfg<2, SILU>, false>(p, grid, stream);
  if (p.m <= 32) return launch_typed<Cfg<4, SILU>, false>(p, grid, stream);
  if constexpr (!SILU) {
    if (p.m > 64) return launch_typed<Cfg<16, false>, false>(p, grid, stream);
  }
  return launch_typed<Cfg<8, SILU>, false>(p, grid, stream);
}

Plan plain_plan(int64_t n, int64_t k, int num_sms) {
  return plan_for(n, k, num_sms, Cfg<1, false>::kOutN, Cfg<1, false>::kTileK);
}
Plan silu_plan(int64_t inter, int64_t k, int num_sms) {
  return plan_for(inter, k, num_sms, Cfg<1, true>::kOutN, Cfg<1, true>::kTileK);
}

SkinnyArgs make_args(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out, int64_t ldo,
                     bool out_f32, int64_t m, int64_t n, int64_t k, const Plan& pl, float* accumulator,
                     int32_t* arrivals) {
  return SkinnyArgs{{}, {}, static_cast<const bf16*>(x), ldx, static_cast<const bf16*>(w), ldw,
                    static_cast<const bf16*>(bias), out, ldo, out_f32, static_cast<int>(m), static_cast<int>(n),
                    static_cast<int>(k), pl.tiles, pl.splits, pl.k_steps, pl.steps_per_split, accumulator, arrivals};
}

}  // namespace

bool skinny_gemm_supported(int64_t m, int64_t n, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw) {
  return m >= 1 && m <= kSkinnyMaxRows && n > 0 && n < (int64_t{1} << 30) && k > 0 && k % 8 == 0 &&
         k < (int64_t{1} << 30) && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

bool skinny_gemm_preferred(int64_t m, int64_t n, int64_t k, int num_sms) {
  return m <= 8 || (m <= 32 && plain_plan(n, k, num_sms).splits == 1);
}

int64_t skinny_gemm_accumulator_floats(int64_t m, int64_t n, int64_t k, int num_sms) {
  const Plan pl = plain_plan(n, k, num_sms);
  return pl.splits > 1 ? int64_t{pl.splits} * m * pl.tiles * Cfg<1, false>::kOutN : 0;
}

cudaError_t launch_skinny_gemm(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                               int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, float* accumulator,
                               int32_t* arrivals, int num_sms, Stream stream) {
  if (m == 0) return cudaSuccess;
  if (!out || !skinny_gemm_supported(m, n, k, x, ldx, w, ldw) || ldo < n) return cudaErrorInvalidValue;
  const Plan pl = plain_plan(n, k, num_sms);
  if (pl.splits > 1 && (!accumulator || !arrivals)) return cudaErrorInvalidValue;
  SkinnyArgs p = make_args(x, ldx, w, ldw, bias, out, ldo, out_f32, m, n, k, pl, accumulator, arrivals);
  return launch_rows<false>(p, pl.grid, stream);
}

bool skinny_gemm_silu_supported(int64_t m, int64_t inter, int64_t k, const void* x, int64_t ldx, const void* w,
                                int64_t ldw, int num_sms) {
  return m <= kSkinnySiluMaxRows && skinny_gemm_supported(m, 2 * inter, k, x, ldx, w, ldw) &&
         inter % Cfg<1, true>::kOutN == 0 &&
         silu_plan(inter, k, num_sms).splits == 1;
}

cudaError_t launch_skinny_gemm_silu(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias,
                                    void* out, int64_t ldo, int64_t m, int64_t inter, int64_t k, int num_sms,
                                    Stream stream) {
  if (m == 0) return cudaSuccess;
  if (!out || !skinny_gemm_silu_supported(m, inter, k, x, ldx, w, ldw, num_sms) || ldo < inter)
    return cudaErrorInvalidValue;
  const Plan pl = silu_plan(inter, k, num_sms);
  SkinnyArgs p = make_args(x, ldx, w, ldw, bias, out, ldo, false, m, inter, k, pl, nullptr, nullptr);
  return launch_rows<true>(p, pl.grid, stream);
}

cudaError_t launch_skinny_gemm_silu_lora(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias,
                                         void* out, int64_t ldo, int64_t m, int64_t inter, int64_t k,
                                         const LoraDelta& lora, int num_sms, Stream stream) {
  if (m == 0) return cudaSuccess;
  if (!out || !skinny_gemm_silu_supported(m, inter, k, x, ldx, w, ldw, num_sms) || ldo < inter ||
      m > kSkinnyLoraMaxRows)
    return cudaErrorInvalidValue;
  if (lora.num_modules < 1 || lora.num_modules > kSkinnyLoraModules || !lora.t || lora.splits < 1 ||
      lora.splits > kLoraMaxShrinkSplits ||
      !lora.seg_start || !lora.seg_slot || lora.num_segments < 0 || lora.module_stride <= 0)
    return cudaErrorInvalidValue;
  for (int j = 0; j < lora.num_modules; ++j) {
    const LoraDelta::Module& mod = lora.m[j];
    if (!mod.b || !mod.ranks || mod.col_begin < 0 || mod.col_end <= mod.col_begin || mod.col_end > 2 * inter ||
        mod.col_begin % 8 != 0 || mod.col_end % 8 != 0)
      return cudaErrorInvalidValue;
  }
  const Plan pl = silu_plan(inter, k, num_sms);
  SkinnyArgs p = make_args(x, ldx, w, ldw, bias, out, ldo, false, m, inter, k, pl, nullptr, nullptr);
  p.lora = lora;
  static_assert(kSkinnyLoraMaxRows == 8, "the LoRA kernel is the 8-row configuration");
  return launch_typed<Cfg<1, true>, true>(p, pl.grid, stream);
}

}  // namespace ls::cuda
