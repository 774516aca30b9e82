// lora_common.cuh: what the multi-LoRA op's files share (lora.cu says how the op works): the tile and block
// constants, where the shrink leaves its partial sums of t, the warp scan that finds a block's tile, the mma over
// 16-byte words, and the launch plan (lora.cu computes it from host scalars; lora_shrink.cu and lora_expand.cu
// launch by it). Included by those three files only.
#pragma once

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"
#include "backend/lora_weights.h"

namespace ls::cuda::lora_detail {

constexpr int kTile = 16;             // tokens per tile (mma M)
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 64;            // shrink: K per step of a warp
constexpr int kMaxSplits = kLoraMaxShrinkSplits;
constexpr int kColsPerBlock = 512;    // expand: a block's columns per iteration (the grid's chunk)
constexpr int kMaxRunChunks = 16;     // expand: a decode block's run of columns is at most this many chunks
constexpr int kThinRows = 2;          // thin tiles: the expand's bulk path, the shrink's own K splits

// Where the shrink leaves its partial sums of t, from host scalars: the shrink, the expand, the scratch size and
// the LoraDelta other kernels read all take it from here.
struct PartialLayout {
  int splits = 0;
  int64_t split_stride = 0, row_stride = 0, module_stride = 0;
};
__host__ __device__ __forceinline__ PartialLayout partial_layout(const LoraArgs& p, int splits) {
  PartialLayout l;
  l.splits = splits;
  l.module_stride = kLoraMaxRank;
  l.row_stride = static_cast<int64_t>(p.num_modules) * kLoraMaxRank;
  l.split_stride = static_cast<int64_t>(p.num_tokens) * l.row_stride;
  return l;
}

struct TileRef {
  int32_t seg, begin, count;  // count 0: no such tile
  int32_t total;              // the batch's tiles (find_tile<true> only)
};

constexpr int kScanSegs = 4;                 // find_tile: segments a lane reads per round
constexpr int kScanRound = 32 * kScanSegs;   // segments per round

// One round of find_tile's scan over segments [base, base + kScanRound), every load issued before any is used:
// the lane's segments' starts and tile counts, the warp's prefix of tiles at the lane, and the round's sum.
struct ScanRound {
  int32_t start[kScanSegs + 1];
  int n[kScanSegs];
  int incl, excl, sum;
  bool rest_empty;  // the round reaches the last token: every later segment is empty
};

__device__ __forceinline__ ScanRound scan_round(const LoraArgs& p, int base, int lane) {
  ScanRound r;
  const int first = base + lane * kScanSegs;
  int32_t slot[kScanSegs];
#pragma unroll
  for (int i = 0; i <= kScanSegs; ++i) r.start[i] = first + i <= p.num_segments ? p.seg_start[first + i] : p.num_tokens;
#pragma unroll
  for (int i = 0; i < kScanSegs; ++i) slot[i] = first + i < p.num_segments ? p.seg_slot[first + i] : -1;
  int mine = 0;
#pragma unroll
  for (int i = 0; i < kScanSegs; ++i) {
    const int32_t start = r.start[i], end = r.start[i + 1];
    r.n[i] = slot[i] >= 0 && slot[i] < p.num_slots && end > start ? (end - start + kTile - 1) / kTile : 0;
    mine += r.n[i];
  }
  int incl = mine;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  r.incl = incl;
  r.excl = incl - mine;
  r.sum = __shfl_sync(0xffffffffu, incl, 31);
  r.rest_empty = __shfl_sync(0xffffffffu, r.start[kScanSegs], 31) >= p.num_tokens;
  return r;
}

// The tile with index want(count) (count 0: none), where count is the batch's tile count with kTotal (also
// returned) and unknown without. Warp 0 scans, the block gets the result. A round covers 128 segments with one
// wait for memory, so a decode step of up to 128 sequences is one round; segments past the last token are empty
// and not read.
template <bool kTotal, typename Want>
__device__ TileRef find_tile(const LoraArgs& p, Want&& want, int32_t* shared) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    const ScanRound first = scan_round(p, 0, lane);
    int total = first.sum;
    if (kTotal && !first.rest_empty) {
      for (int base = kScanRound; base < p.num_segments; base += kScanRound) {
        const ScanRound r = scan_round(p, base, lane);
        total += r.sum;
        if (r.rest_empty) break;
      }
    }
    const int tile = want(total);
    if (lane == 0) {
      shared[2] = 0;
      shared[3] = total;
    }
    __syncwarp();
    ScanRound r = first;
    for (int base = 0, before = 0; tile >= before;) {
      int t = tile - before;
      if (t < r.sum) {
        if (t >= r.excl && t < r.incl) {
          t -= r.excl;
          bool done = false;
#pragma unroll
          for (int i = 0; i < kScanSegs; ++i) {  // static indices only: the round stays in registers
            if (!done && t < r.n[i]) {
              const int32_t begin = r.start[i] + t * kTile;
              shared[0] = base + lane * kScanSegs + i;
              shared[1] = begin;
              shared[2] = min(kTile, r.start[i + 1] - begin);
              done = true;
            }
            if (!done) t -= r.n[i];
          }
        }
        break;
      }
      before += r.sum;
      base += kScanRound;
      if (r.rest_empty || base >= p.num_segments) break;
      r = scan_round(p, base, lane);
    }
  }
  __syncthreads();
  return {shared[0], shared[1], shared[2], shared[3]};
}

// A block with nothing to do returns before pdl_wait, except the grid's first block, which waits first: a kernel
// whose every block returned unwaited could complete before the previous kernel, and the next kernel's pdl_wait
// (which waits for this kernel only) would then not order it after that one. With the first block waiting, the
// kernel completes, and lets dependents launch, only after the previous kernel completed and its writes are visible.
__device__ __forceinline__ void idle_block_exit() {
  if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0) pdl_wait();
}

// Two m16n8k16 products over the 8 physical k of one 16-byte word per operand row (see the top comment).
__device__ __forceinline__ void mma_word(float (&c)[4], const uint4& x_g, const uint4& x_g8, const uint4& w) {
  const uint32_t a0[4] = {x_g.x, x_g8.x, x_g.y, x_g8.y};
  mma_bf16(c, a0, w.x, w.y);
  const uint32_t a1[4] = {x_g.z, x_g8.z, x_g.w, x_g8.w};
  mma_bf16(c, a1, w.z, w.w);
}

// The expand's choice of columns per block: the host's widths (wide / 16, ..., wide / 2, wide, where the grid
// has a block for each tile of the batch and each chunk at `wide`) and, for each, its chunk count and the
// modules' first chunks.
constexpr int kWidths = 5;
constexpr int kMinCols = 128;
struct ExpandWidths {
  int32_t cols[kWidths];
  int32_t chunks[kWidths];
  int32_t first[kWidths][kLoraMaxModules + 1];  // module m owns chunks [first[j][m], first[j][m + 1])
};

struct Plan {
  int tiles, splits, slice;
  int thin_splits, thin_slice;  // the shrink's K splits and warp slices for tiles of 1-2 rows
  ExpandWidths widths;  // the expand's columns per block (the last at the most tiles)
  bool decode, bulk;
};

// The plan of a launch (lora.cu).
Plan plan_of(const LoraArgs& p, int num_sms);
// Whether the op's arguments and the scratch can be launched (lora.cu).
bool launchable(const LoraArgs& p, const float* scratch);

}  // namespace ls::cuda::lora_detail
