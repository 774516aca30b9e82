// lora.cu: the multi-LoRA op for 1-3 modules that share x, in two launches (shrink, expand).
//
// Tiles. The batch's segments (runs of tokens with one adapter slot; a decode step's tokens are segments of
// their own) are cut into tiles of up to 16 tokens, one mma M. Base-only segments (slot -1) have no tiles. The
// grid's x dimension is an upper bound on the tile count from host scalars (segments + tokens / 16), and each
// block finds its tile by a warp scan over the segments (128 a round, one wait for memory), so CUDA graphs replay
// the same grid for any mix of adapters, ranks and segment lengths; blocks past the last tile, and tiles whose
// slot has rank 0 for their module, return at once. A segment scan that reaches the last token stops there (a
// decode graph pads its segment list with empty ones).
//
// Shrink, block (tile, module, K split): t = x A^T. 8 warps, each a slice of K; per 64-wide K chunk a lane loads
// 32 bytes of its x rows (g, g + 8) and of its A rows (rank g of each 8-rank group) straight from global memory
// into mma fragments: the 16 physical k a lane holds are spread over the logical k of four m16n8k16 products
// the same way for x and A, so the sum over k is unchanged (x rows are the mma rows, ranks the columns). Ranks
// go in passes of 16 (2 groups; a group past the slot's rank skips its loads and products); A does not depend on
// the previous kernel, so its first words load before the PDL wait and each chunk's loop fetches the next
// chunk's. The 8 warps' fp32 sums meet in shared memory; the block writes its K split's partial t [tile tokens,
// rank] in fp32.
//
// Expand, block (tile, a run of columns of one module's output): y += t B^T, with t summed over the K splits and
// rounded to bf16 (PEFT rounds the intermediate likewise), y read and written once (one rounding). The grid has a
// block per tile bound and 512-column run; a batch with few tiles (tokens sharing an adapter) spreads the same
// blocks over runs a half or a quarter as wide, so that more of them work.
// Tiles of many rows take the tensor cores; tiles of one or two rows (decode steps with different adapters)
// stream B into shared memory by bulk copies on the tensor memory accelerator and sum on the CUDA cores.
//
// Decode with distinct adapters is bound by the adapters' bytes (A and B read once per token); the K splits give
// a step with one shared adapter enough blocks to stream it. The shrink reads only x, so linear_lora may run it
// beside the projection; the expand adds into the projection's output and follows both, or (LoraModuleArgs::sums)
// writes its fp32 sums apart, beside the projection too, for the kernel that reads the output next.
#include <algorithm>

#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"
#include "backend/lora_weights.h"

namespace ls::cuda {
namespace {

constexpr int kTile = 16;             // tokens per tile (mma M)
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 64;            // shrink: K per step of a warp
constexpr int kPassRanks = 16;        // shrink: ranks per pass (2 groups of 8)
constexpr int kMaxSplits = kLoraMaxShrinkSplits;
constexpr int kColsPerBlock = 512;    // expand: a block's columns per iteration (the grid's chunk)
constexpr int kMaxRunChunks = 16;     // expand: a decode block's run of columns is at most this many chunks
constexpr int kMaxColsPerWarp = 64;   // expand, mma path: columns per warp and step (32 in decode steps, else 64)
constexpr int kThinRows = 2;          // thin tiles: the expand's bulk path, the shrink's own K splits
constexpr int kBulkStages = 2;        // expand, bulk path: B stages in flight per block
constexpr int kBulkStageBytes = 16384;

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

__device__ __forceinline__ uint4 load16_or_zero(const bf16* p, bool valid) {
  return valid ? *reinterpret_cast<const uint4*>(p) : make_uint4(0, 0, 0, 0);
}

// Two m16n8k16 products over the 8 physical k of one 16-byte word per operand row (see the top comment).
__device__ __forceinline__ void mma_word(float (&c)[4], const uint4& x_g, const uint4& x_g8, const uint4& w) {
  const uint32_t a0[4] = {x_g.x, x_g8.x, x_g.y, x_g8.y};
  mma_bf16(c, a0, w.x, w.y);
  const uint32_t a1[4] = {x_g.z, x_g8.z, x_g.w, x_g8.w};
  mma_bf16(c, a1, w.z, w.w);
}

constexpr int kPassGroups = kPassRanks / 8;  // shrink: 8-rank groups per pass

// The lane's A rows of one pass (rank r0 + 8 grp + g of each 8-rank group; null past the rank).
__device__ __forceinline__ void a_rows_of(const bf16* (&rows)[kPassGroups], const bf16* a, int64_t in_dim, int r0,
                                          int g, int rank) {
#pragma unroll
  for (int grp = 0; grp < kPassGroups; ++grp) {
    const int r = r0 + grp * 8 + g;
    rows[grp] = r < rank ? a + static_cast<int64_t>(r) * in_dim : nullptr;
  }
}

// A lane's A words of one 64-wide K chunk (its 16 physical k from k0, in two words); zeros past the slice.
__device__ __forceinline__ void load_a_chunk(uint4 (&w0)[kPassGroups], uint4 (&w1)[kPassGroups],
                                             const bf16* const (&rows)[kPassGroups], int k0, int k_end) {
#pragma unroll
  for (int grp = 0; grp < kPassGroups; ++grp) {
    w0[grp] = load16_or_zero(rows[grp] + k0, rows[grp] && k0 < k_end);
    w1[grp] = load16_or_zero(rows[grp] + k0 + 8, rows[grp] && k0 + 8 < k_end);
  }
}

// Shrink, in passes of kPassRanks ranks. A does not depend on the previous kernel: the first chunk's words are
// loaded before pdl_wait, and each chunk's loop loads the next chunk's A words before it multiplies, so two
// chunks of A are in flight per warp. 3 blocks per SM (80 registers): passes of 16 ranks keep a lane's A words of
// two chunks in 32 registers, and more blocks' loads are in flight. History (bench/cuda_engine_notes.md, run 10):
// with passes of 32 for ranks above 16 the kernel needed 121 registers (2 blocks per SM), and batch-128 steps took
// 2.5-3% longer.
// Thin tiles (1-2 rows: decode steps with different adapters) split K only `thin_splits` ways, in slices of
// `thin_slice` per warp: the grid's splits are sized for a batch sharing one adapter (few tiles), and with a tile
// per token each block would stream only a few chunks of A behind its fixed chain of dependent loads (segment
// scan, slot, rank, A). The blocks of the other splits return; split 0 writes their partial sums as zeros.
__global__ void __launch_bounds__(kThreads, 3)
    lora_shrink_kernel(const __grid_constant__ LoraArgs p, int slice, int thin_splits, int thin_slice, float* partial) {
  __shared__ int32_t tile_info[4];
  __shared__ float red[kWarps][kTile][kPassRanks + 1];
  const TileRef tile = find_tile<false>(p, [](int) { return static_cast<int>(blockIdx.x); }, tile_info);
  if (tile.count == 0) return idle_block_exit();
  const bool thin = tile.count <= kThinRows;
  if (thin && static_cast<int>(blockIdx.z) >= thin_splits) return idle_block_exit();
  const LoraModuleArgs& mod = p.m[blockIdx.y];
  const int32_t slot = p.seg_slot[tile.seg];
  const int rank = mod.ranks[slot];
  if (rank <= 0) return idle_block_exit();
  const bf16* a = static_cast<const bf16*>(mod.a[slot]);
  const PartialLayout lay = partial_layout(p, static_cast<int>(gridDim.z));
  float* out = partial + static_cast<int64_t>(blockIdx.z) * lay.split_stride + blockIdx.y * lay.module_stride;
  if (thin && blockIdx.z == 0)
    for (int e = threadIdx.x; e < (lay.splits - thin_splits) * kThinRows * rank; e += kThreads) {
      const int z = thin_splits + e / (kThinRows * rank), row = e / rank % kThinRows;
      if (row < tile.count) out[z * lay.split_stride + (tile.begin + row) * lay.row_stride + e % rank] = 0.0f;
    }
  if (thin) slice = thin_slice;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  // K offsets fit in 32 bits (in_dim is a row length).
  const int k_begin = (static_cast<int>(blockIdx.z) * kWarps + warp) * slice;
  const int k_end = min(static_cast<int>(p.in_dim), k_begin + slice);
  const bf16* x = static_cast<const bf16*>(p.x);
  const bf16* x_g = x + (tile.begin + g) * p.x_ld;
  const bf16* x_g8 = x + (tile.begin + g + 8) * p.x_ld;
  const bool has_g = g < tile.count, has_g8 = g + 8 < tile.count;
  const bf16* rows[kPassGroups];
  uint4 w0[kPassGroups], w1[kPassGroups];
  a_rows_of(rows, a, p.in_dim, 0, g, rank);
  load_a_chunk(w0, w1, rows, k_begin + t4 * 16, k_end);
  pdl_wait();
  pdl_launch_dependents();
  for (int r0 = 0; r0 < rank; r0 += kPassRanks) {
    if (r0 > 0) {
      a_rows_of(rows, a, p.in_dim, r0, g, rank);
      load_a_chunk(w0, w1, rows, k_begin + t4 * 16, k_end);
    }
    float acc[kPassGroups][4] = {};
    for (int k = k_begin; k < k_end; k += kChunk) {
      const int k0 = k + t4 * 16, k1 = k0 + 8;
      const bool v0 = k0 < k_end, v1 = k1 < k_end;
      const uint4 xg0 = load16_or_zero(x_g + k0, has_g && v0), xg1 = load16_or_zero(x_g + k1, has_g && v1);
      const uint4 xh0 = load16_or_zero(x_g8 + k0, has_g8 && v0), xh1 = load16_or_zero(x_g8 + k1, has_g8 && v1);
      const bool more = k + kChunk < k_end;  // warp-uniform
      uint4 n0[kPassGroups], n1[kPassGroups];
      if (more) load_a_chunk(n0, n1, rows, k0 + kChunk, k_end);
#pragma unroll
      for (int grp = 0; grp < kPassGroups; ++grp) {
        if (r0 + grp * 8 >= rank) break;  // uniform: the rest of the pass is past the rank
        mma_word(acc[grp], xg0, xh0, w0[grp]);
        mma_word(acc[grp], xg1, xh1, w1[grp]);
      }
      if (more) {
#pragma unroll
        for (int grp = 0; grp < kPassGroups; ++grp) {
          w0[grp] = n0[grp];
          w1[grp] = n1[grp];
        }
      }
    }
#pragma unroll
    for (int grp = 0; grp < kPassGroups; ++grp) {
      const int c = grp * 8 + 2 * t4;
      red[warp][g][c] = acc[grp][0];
      red[warp][g][c + 1] = acc[grp][1];
      red[warp][g + 8][c] = acc[grp][2];
      red[warp][g + 8][c + 1] = acc[grp][3];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kPassRanks; e += kThreads) {
      const int row = e / kPassRanks, c = e % kPassRanks;
      if (row >= tile.count || r0 + c >= rank) continue;
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += red[w][row][c];
      out[(tile.begin + row) * lay.row_stride + r0 + c] = sum;
    }
    __syncthreads();
  }
}

// Eight consecutive bf16 of a B row from `k` on (zeros past the rank), as one 16-byte word.
__device__ __forceinline__ uint4 load_b_word(const bf16* row, int k, int rank, bool vector) {
  if (vector) return k < rank ? *reinterpret_cast<const uint4*>(row + k) : make_uint4(0, 0, 0, 0);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int k0 = k + 2 * i;
    const unsigned short lo = k0 < rank ? __bfloat16_as_ushort(row[k0]) : 0;
    const unsigned short hi = k0 + 1 < rank ? __bfloat16_as_ushort(row[k0 + 1]) : 0;
    w[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// The expand's unit of work: a tile and the columns [n_begin, n_end) of module m's output.
struct ExpandUnit {
  int tile, m, n_begin, n_end;
};

// What both expand paths share: the tile, its module and slot, the block's columns [n_begin, n_end), and t.
struct ExpandTile {
  TileRef tile;
  int m, rank;
  int64_t n_begin, n_end;
  const bf16* b;  // B [out_dim, rank] of the slot
};

// The shared memory of the expand: t, summed over the K splits and rounded to bf16, and the path's own buffers
// (the mma path's product before the store, or the bulk path's B stages and their mbarriers).
struct ExpandSmem {
  int32_t tile_info[4];
  ExpandUnit unit;
  __align__(16) bf16 ts[kTile][kLoraMaxRank + 8];  // rows padded so they fall in different banks
  __align__(8) uint64_t full[kBulkStages];
  union {
    float cs[kWarps][kTile][kMaxColsPerWarp + 4];
    __align__(128) unsigned char stage[kBulkStages][kBulkStageBytes];
  };
};

// The expand's fp32 sums of row `row`, columns [col, col + 8) (those under out_dim) into mod.sums instead of y:
// 16-byte stores where lora_delta_sums allowed them.
__device__ __forceinline__ void store_sums8(const LoraModuleArgs& mod, int64_t row, int64_t col, const float* c) {
  float* dst = mod.sums + row * mod.y_ld + col;
  if (col + 8 <= mod.out_dim && mod.y_ld % 4 == 0 && (reinterpret_cast<uintptr_t>(mod.sums) & 15) == 0) {
    reinterpret_cast<float4*>(dst)[0] = make_float4(c[0], c[1], c[2], c[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(c[4], c[5], c[6], c[7]);
  } else {
    for (int x = 0; x < 8 && col + x < mod.out_dim; ++x) dst[x] = c[x];
  }
}

// The mma path (tiles of many rows: prefill chunks, a batch sharing one adapter): each warp owns kColsPerWarp
// columns per step: per 32 ranks a lane takes its A fragment from t in shared memory, loads 16 bytes of each of
// its kColsPerWarp / 8 B rows, and accumulates in fp32; the product goes through shared memory so that y is read
// and written 16 bytes per lane. 64 columns need 128 registers (2 blocks per SM); 32 fit in 64 (4 blocks per SM),
// which the bulk path of the same kernel needs to keep its copies in flight.
template <int kColsPerWarp>
__device__ __forceinline__ void expand_mma(const LoraModuleArgs& mod, const ExpandTile& e, ExpandSmem& sm) {
  const bool vector = e.rank % 8 == 0 && (reinterpret_cast<uintptr_t>(e.b) & 15) == 0;
  bf16* y = static_cast<bf16*>(mod.y);
  const bool vector_y = mod.y_ld % 8 == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0;
  constexpr int kColGroups = kColsPerWarp / 8;
  const TileRef& tile = e.tile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  for (int64_t n_warp = e.n_begin + warp * kColsPerWarp; n_warp < e.n_end; n_warp += kWarps * kColsPerWarp) {
    // The y pieces this lane updates (row, 8 columns) are loaded up front, with the first B words, so that the
    // step waits for memory once.
    constexpr int kPieces = kTile * (kColsPerWarp / 8) / 32;
    uint4 y_old[kPieces];
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8);
      const int64_t col = n_warp + q % (kColsPerWarp / 8) * 8;
      const bool whole = vector_y && !mod.sums && row < tile.count && col + 8 <= mod.out_dim;
      y_old[i] =
          whole ? *reinterpret_cast<const uint4*>(y + (tile.begin + row) * mod.y_ld + col) : make_uint4(0, 0, 0, 0);
    }
    float acc[kColGroups][4] = {};
    for (int k = 0; k < e.rank; k += 32) {
      const int kk = k + t4 * 8;
      const uint4 ag = *reinterpret_cast<const uint4*>(&sm.ts[g][kk]);
      const uint4 ah = *reinterpret_cast<const uint4*>(&sm.ts[g + 8][kk]);
      uint4 w[kColGroups];
#pragma unroll
      for (int j = 0; j < kColGroups; ++j) {
        const int64_t n = n_warp + j * 8 + g;
        w[j] = n < mod.out_dim ? load_b_word(e.b + n * e.rank, kk, e.rank, vector) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < kColGroups; ++j) mma_word(acc[j], ag, ah, w[j]);
    }
#pragma unroll
    for (int j = 0; j < kColGroups; ++j) {
      const int c = j * 8 + 2 * t4;
      sm.cs[warp][g][c] = acc[j][0];
      sm.cs[warp][g][c + 1] = acc[j][1];
      sm.cs[warp][g + 8][c] = acc[j][2];
      sm.cs[warp][g + 8][c + 1] = acc[j][3];
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8), c8 = q % (kColsPerWarp / 8) * 8;
      const int64_t col = n_warp + c8;
      if (row >= tile.count || col >= mod.out_dim) continue;
      const float* c = &sm.cs[warp][row][c8];
      if (mod.sums) {
        store_sums8(mod, tile.begin + row, col, c);
        continue;
      }
      bf16* dst = y + (tile.begin + row) * mod.y_ld + col;
      if (vector_y && col + 8 <= mod.out_dim) {
        float v[8];
        unpack8(y_old[i], v);
#pragma unroll
        for (int x = 0; x < 8; ++x) v[x] += c[x];
        store8(dst, v);
      } else {
        for (int x = 0; x < 8 && col + x < mod.out_dim; ++x)
          dst[x] = __float2bfloat16_rn(__bfloat162float(dst[x]) + c[x]);
      }
    }
    __syncwarp();
  }
}

// The bulk path (tiles of 1-2 rows: decode steps with different adapters), where the op is a stream over B that
// one mma row per tile cannot keep busy from registers: the block's B columns are contiguous ([out_dim, rank]
// rows), so one thread moves them into shared memory in bulk copies of up to 16 KB (stages of a multiple of 8
// columns, two in flight, begun before the previous kernel ends: B does not depend on it), and each thread owns
// columns and sums t B^T over the tile's rows on the CUDA cores (at one or two rows the products are free, the
// bytes are not). B not 16-byte aligned is read in place.
__device__ __forceinline__ int bulk_stage_cols(int rank) {
  return min(kColsPerBlock, kBulkStageBytes / (2 * rank) / 8 * 8);
}

__device__ __forceinline__ int bulk_stages(const ExpandTile& e) {
  const int stage_cols = bulk_stage_cols(e.rank);
  return static_cast<int>((e.n_end - e.n_begin + stage_cols - 1) / stage_cols);
}

__device__ __forceinline__ bool bulk_copies(const ExpandTile& e) {
  return (reinterpret_cast<uintptr_t>(e.b) & 15) == 0;
}

__device__ __forceinline__ void bulk_issue(const ExpandTile& e, ExpandSmem& sm, int j) {  // one thread: stage j
  const int stage_cols = bulk_stage_cols(e.rank);
  const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
  const auto bytes = static_cast<uint32_t>(min(static_cast<int64_t>(stage_cols), e.n_end - n0) * e.rank * 2);
  mbar_arrive_expect_tx(&sm.full[j % kBulkStages], bytes);
  bulk_copy(sm.stage[j % kBulkStages], e.b + n0 * e.rank, bytes, &sm.full[j % kBulkStages]);
}

__device__ __forceinline__ void bulk_begin(const ExpandTile& e, ExpandSmem& sm) {  // one thread, before pdl_wait
  if (!bulk_copies(e)) return;
  for (int s = 0; s < kBulkStages; ++s) mbar_init(&sm.full[s], 1);
  mbar_init_fence();
  const int stages = bulk_stages(e);
  for (int j = 0; j < stages && j < kBulkStages; ++j) bulk_issue(e, sm, j);
}

constexpr int kBulkColsPerThread = kColsPerBlock / kThreads;  // a stage has at most kColsPerBlock columns
static_assert(kColsPerBlock % kThreads == 0, "a bulk stage's columns spread evenly over the threads");

// A thread's old y values in stage j (its columns threadIdx.x + q kThreads, the tile's rows; zeros past them).
// y is the previous kernel's output, but not B's: loading a stage's y before waiting for its B (and the first
// stage's with t) lets the waits overlap.
struct BulkY {
  float v[kBulkColsPerThread][kThinRows];
};

__device__ __forceinline__ BulkY bulk_load_y(const LoraModuleArgs& mod, const ExpandTile& e, int j) {
  const int stage_cols = bulk_stage_cols(e.rank);
  const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
  const int cols = static_cast<int>(min(static_cast<int64_t>(stage_cols), e.n_end - n0));
  const bf16* y = static_cast<const bf16*>(mod.y) + e.tile.begin * mod.y_ld + n0;
  BulkY o;
#pragma unroll
  for (int q = 0; q < kBulkColsPerThread; ++q) {
    const int c = static_cast<int>(threadIdx.x) + q * kThreads;
#pragma unroll
    for (int r = 0; r < kThinRows; ++r)
      o.v[q][r] = c < cols && r < e.tile.count ? __bfloat162float(y[r * mod.y_ld + c]) : 0.0f;
  }
  return o;
}

// `first`: stage 0's y (bulk_load_y).
__device__ __forceinline__ void expand_bulk(const LoraModuleArgs& mod, const ExpandTile& e, ExpandSmem& sm,
                                            const BulkY& first) {
  const int stage_cols = bulk_stage_cols(e.rank), stages = bulk_stages(e);
  const bool copies = bulk_copies(e), vector_b = e.rank % 8 == 0;
  bf16* y = static_cast<bf16*>(mod.y);
  const TileRef& tile = e.tile;
  for (int j = 0; j < stages; ++j) {
    const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
    const int cols = static_cast<int>(min(static_cast<int64_t>(stage_cols), e.n_end - n0));
    const BulkY old = j == 0 || mod.sums ? first : bulk_load_y(mod, e, j);
    const bf16* bs = e.b + n0 * e.rank;  // generic pointer: the stage in shared memory, or B in place
    if (copies) {
      mbar_wait(&sm.full[j % kBulkStages], (j / kBulkStages) & 1);
      bs = reinterpret_cast<const bf16*>(sm.stage[j % kBulkStages]);
    }
#pragma unroll
    for (int q = 0; q < kBulkColsPerThread; ++q) {
      const int c = static_cast<int>(threadIdx.x) + q * kThreads;
      if (c >= cols) break;
      const bf16* row_b = bs + static_cast<int64_t>(c) * e.rank;
      bf16* yc = y + tile.begin * mod.y_ld + n0 + c;
      float acc[kThinRows] = {};
      for (int k = 0; k < e.rank; k += 8) {
        float w[8];
        if (vector_b) {
          unpack8(*reinterpret_cast<const uint4*>(row_b + k), w);
        } else {
#pragma unroll
          for (int x = 0; x < 8; ++x) w[x] = k + x < e.rank ? __bfloat162float(row_b[k + x]) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < kThinRows; ++r) {
          if (r >= tile.count) break;
          float t[8];
          unpack8(*reinterpret_cast<const uint4*>(&sm.ts[r][k]), t);
#pragma unroll
          for (int x = 0; x < 8; ++x) acc[r] += t[x] * w[x];
        }
      }
#pragma unroll
      for (int r = 0; r < kThinRows; ++r) {
        if (r >= tile.count) break;
        if (mod.sums) {
          mod.sums[(tile.begin + r) * mod.y_ld + n0 + c] = acc[r];
        } else {
          yc[r * mod.y_ld] = __float2bfloat16_rn(old.v[q][r] + acc[r]);
        }
      }
    }
    __syncthreads();  // the buffer is read; it may take stage j + 2
    if (copies && threadIdx.x == 0 && j + kBulkStages < stages) bulk_issue(e, sm, j + kBulkStages);
  }
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

// This block's unit when the batch has `tiles` tiles: the narrowest width whose units fit the grid (a batch of
// few tiles, tokens sharing an adapter, gets more blocks in flight). At the widest the grid's own (tile, chunk)
// indices are the unit; narrower widths number the units tiles fastest. No unit: tile -1.
__device__ __forceinline__ ExpandUnit expand_unit(const LoraArgs& p, const ExpandWidths& w, int tiles) {
  const int64_t blocks = static_cast<int64_t>(gridDim.x) * gridDim.y;
  int j = kWidths - 1;
#pragma unroll
  for (int i = kWidths - 2; i >= 0; --i)
    if (static_cast<int64_t>(tiles) * w.chunks[i] <= blocks) j = i;
  int tile = static_cast<int>(blockIdx.x), c = static_cast<int>(blockIdx.y);
  if (j < kWidths - 1 && tiles > 0) {
    const int linear = c * static_cast<int>(gridDim.x) + tile;
    c = linear / tiles;
    tile = linear - c * tiles;
  }
  ExpandUnit u;
  u.tile = tile < tiles && c < w.chunks[j] ? tile : -1;
  u.m = 0;
  while (u.m + 1 < p.num_modules && c >= w.first[j][u.m + 1]) ++u.m;
  u.n_begin = (c - w.first[j][u.m]) * w.cols[j];
  u.n_end = min(static_cast<int>(p.m[u.m].out_dim), u.n_begin + w.cols[j]);
  return u;
}

// Expand, block (tile, a run of columns of one module's output; expand_unit): y += t B^T, by the bulk path for
// tiles of up to kThinRows rows (when `bulk`) and the mma path for the rest, chosen per block so that a graph
// serves any mix. The block first sums the tile's t over the K splits into shared memory, rounded to bf16 (PEFT
// rounds the intermediate likewise), zeros past the rank (to a multiple of 32) and past the tile's rows.
// kDecode (steps of a segment per one or two tokens): the mma path at 32 columns, 4 blocks per SM; otherwise 64
// columns, 2 blocks per SM, which prefill chunks run faster with.
// History (bench/cuda_engine_notes.md, run 7): with every tile in the bulk path, shared adapters (16-row tiles)
// ran 15-18% slower than on the tensor cores; the bulk path as a second launch beside the mma kernel (each
// skipping the other's tiles) lost more to its empty blocks than it gained; in one kernel at 2 blocks per SM it
// gained nothing.
template <bool kDecode>
__global__ void __launch_bounds__(kThreads, kDecode ? 4 : 2)
    lora_expand_kernel(const __grid_constant__ LoraArgs p, const __grid_constant__ ExpandWidths widths, int splits,
                       const float* partial, bool bulk) {
  __shared__ ExpandSmem sm;
  ExpandTile e;
  e.tile = find_tile<true>(p, [&](int tiles) {  // warp 0, which hands the unit to the block
    const ExpandUnit unit = expand_unit(p, widths, tiles);
    if (threadIdx.x == 0) sm.unit = unit;
    return unit.tile;
  }, sm.tile_info);
  if (e.tile.count == 0) return idle_block_exit();
  const ExpandUnit u = sm.unit;
  e.m = u.m;
  const LoraModuleArgs& mod = p.m[e.m];
  const int32_t slot = p.seg_slot[e.tile.seg];
  e.rank = mod.ranks[slot];
  e.n_begin = u.n_begin;
  if (e.rank <= 0 || e.n_begin >= mod.out_dim) return idle_block_exit();
  e.n_end = u.n_end;
  e.b = static_cast<const bf16*>(mod.b[slot]);
  const bool thin = bulk && e.tile.count <= kThinRows;
  if (thin && threadIdx.x == 0) bulk_begin(e, sm);
  pdl_wait();
  pdl_launch_dependents();
  BulkY y0{};
  if (thin && !mod.sums) y0 = bulk_load_y(mod, e, 0);
  const int kpad = (e.rank + 31) / 32 * 32;
  const PartialLayout lay = partial_layout(p, splits);
  for (int i = threadIdx.x; i < kTile * kpad; i += kThreads) {
    const int row = i / kpad, c = i % kpad;
    float v = 0.0f;
    if (row < e.tile.count && c < e.rank) {
      const float* src = partial + (e.tile.begin + row) * lay.row_stride + e.m * lay.module_stride + c;
#pragma unroll
      for (int z = 0; z < kMaxSplits; ++z)
        if (z < splits) v += src[z * lay.split_stride];
    }
    sm.ts[row][c] = __float2bfloat16_rn(v);
  }
  __syncthreads();
  if (thin) {
    expand_bulk(mod, e, sm, y0);
  } else {
    expand_mma<kDecode ? 32 : 64>(mod, e, sm);
  }
}

struct Plan {
  int tiles, splits, slice;
  int thin_splits, thin_slice;  // the shrink's K splits and warp slices for tiles of 1-2 rows
  ExpandWidths widths;  // the expand's columns per block (the last at the most tiles)
  bool decode, bulk;
};

// K cut about `want` ways: each warp's slice in whole chunks, and the splits that slice leaves (none empty).
struct KSplit {
  int splits, slice;
};
KSplit split_k(int64_t in_dim, int64_t want) {
  const int64_t per_warp = (in_dim + want * kWarps - 1) / (want * kWarps);
  const int64_t slice = (per_warp + kChunk - 1) / kChunk * kChunk;
  return {static_cast<int>((in_dim + kWarps * slice - 1) / (kWarps * slice)), static_cast<int>(slice)};
}

// The grid, from host scalars only: an upper bound on the tiles; K splits so that a batch whose tokens all share
// one adapter (the fewest tiles) still fills half the SMs, each warp's slice at least two chunks, and fewer for thin
// tiles (lora_shrink_kernel); and for the expand, runs of 512-column chunks per block so that the grid is about one
// wave at the most tiles.
Plan plan_of(const LoraArgs& p, int num_sms) {
  Plan pl;
  pl.tiles = static_cast<int>(std::min<int64_t>(p.num_tokens, p.num_segments + p.num_tokens / kTile));
  const int64_t fewest_tiles = (static_cast<int64_t>(p.num_tokens) + kTile - 1) / kTile;
  const int64_t fewest = fewest_tiles * p.num_modules;
  const int64_t by_k = std::max<int64_t>(p.in_dim / (kWarps * 2 * kChunk), 1);
  int64_t s = (num_sms / 2 + fewest - 1) / fewest;
  s = std::min<int64_t>({s, by_k, kMaxSplits});
  const KSplit k = split_k(p.in_dim, std::max<int64_t>(s, 1));
  pl.splits = k.splits;
  pl.slice = k.slice;
  // Thin tiles: as few splits as keep about one wave of the shrink's 3 blocks per SM busy at the most tiles.
  const int64_t thin = (3 * static_cast<int64_t>(num_sms)) / std::max<int64_t>(int64_t{pl.tiles} * p.num_modules, 1);
  const KSplit t = split_k(p.in_dim, std::clamp<int64_t>(thin, 1, pl.splits));
  pl.thin_splits = t.splits;
  pl.thin_slice = t.slice;
  // Decode steps (a segment per one or two tokens) take the expand kernel built for them.
  pl.decode = 2 * static_cast<int64_t>(p.num_segments) >= p.num_tokens;
  // Columns per block, from the count of blocks that a run of `cols` columns gives at the most tiles (each
  // module's last run may be short, so it is counted per module); a batch of fewer tiles takes narrower runs of
  // the same grid (expand_unit). The decode build runs 4 blocks per SM, each streaming its B in stages.
  const int64_t slots = 4 * static_cast<int64_t>(num_sms);
  const auto blocks_at = [&](int64_t cols) {
    int64_t runs = 0;
    for (int m = 0; m < p.num_modules; ++m) runs += (p.m[m].out_dim + cols - 1) / cols;
    return pl.tiles * runs;
  };
  int run_chunks = 1;
  if (pl.decode) {
    // Decode: the narrowest run whose grid fits one wave (128 distinct adapters: q/k/v take 2048 columns, 512
    // blocks, where the rounded-up average gave 1536 and a second wave of 112 blocks; H200 runs 80-82: 0.7-2%
    // faster steps in each of five pairs).
    while (run_chunks < kMaxRunChunks && blocks_at(int64_t{kColsPerBlock} * run_chunks) > slots) ++run_chunks;
  } else {
    // Prefill chunks: about a wave on average, at most 8 chunks (as measured for them).
    run_chunks = static_cast<int>(std::clamp<int64_t>((blocks_at(kColsPerBlock) + slots - 1) / slots, 1, 8));
  }
  const int wide = kColsPerBlock * run_chunks;
  // Thin tiles may take the bulk path, which copies whole 16-byte words of B columns (out_dim a multiple of 8).
  pl.bulk = p.bulk_expand;
  for (int m = 0; m < p.num_modules; ++m) pl.bulk = pl.bulk && p.m[m].out_dim % 8 == 0;
  for (int j = 0; j < kWidths; ++j) {
    // wide / 16, ..., wide, at least kMinCols (half the decode build's mma step; narrower ran slower)
    const int cols = std::max(wide >> (kWidths - 1 - j), kMinCols);
    pl.widths.cols[j] = cols;
    pl.widths.first[j][0] = 0;
    for (int m = 0; m < kLoraMaxModules; ++m)
      pl.widths.first[j][m + 1] =
          pl.widths.first[j][m] + (m < p.num_modules ? static_cast<int32_t>((p.m[m].out_dim + cols - 1) / cols) : 0);
    pl.widths.chunks[j] = pl.widths.first[j][p.num_modules];
  }
  return pl;
}

}  // namespace

bool lora_supported(const LoraArgs& p) {
  if (p.num_modules < 1 || p.num_modules > kLoraMaxModules) return false;
  if (p.in_dim <= 0 || p.in_dim % 8 != 0 || p.x_ld % 8 != 0 || !aligned16(p.x)) return false;
  for (int m = 0; m < p.num_modules; ++m) {
    const LoraModuleArgs& a = p.m[m];
    if (!a.a || !a.b || !a.ranks || !a.y || a.out_dim <= 0 || a.out_dim >= (int64_t{1} << 30) || a.y_ld < a.out_dim)
      return false;
  }
  return true;
}

int64_t lora_scratch_floats(const LoraArgs& p, int num_sms) {
  const PartialLayout l = partial_layout(p, plan_of(p, num_sms).splits);
  return l.splits * l.split_stride;
}

bool lora_delta(const LoraArgs& a, const void* out, int64_t out_ld, int64_t out_cols, const float* scratch,
                int num_sms, LoraDelta& d) {
  const PartialLayout l = partial_layout(a, plan_of(a, num_sms).splits);
  d.seg_start = a.seg_start;
  d.seg_slot = a.seg_slot;
  d.num_segments = a.num_segments;
  d.num_slots = a.num_slots;
  d.t = scratch;
  d.splits = l.splits;
  d.split_stride = l.split_stride;
  d.row_stride = l.row_stride;
  d.module_stride = l.module_stride;
  d.num_modules = a.num_modules;
  for (int j = 0; j < a.num_modules; ++j) {
    const LoraModuleArgs& mod = a.m[j];
    const auto offset = static_cast<const bf16*>(mod.y) - static_cast<const bf16*>(out);
    if (mod.y_ld != out_ld || offset < 0 || offset + mod.out_dim > out_cols) return false;
    d.m[j].b = mod.b;
    d.m[j].ranks = mod.ranks;
    d.m[j].col_begin = offset;
    d.m[j].col_end = offset + mod.out_dim;
  }
  return true;
}

bool lora_delta_sums(LoraArgs& a, float* sums, LoraDelta& d) {
  const int64_t ld = a.num_modules > 0 ? a.m[0].y_ld : 0;
  if (!sums || !aligned16(sums) || ld % 4 != 0) return false;
  for (int j = 0; j < a.num_modules; ++j) a.m[j].sums = sums + d.m[j].col_begin;
  d.sums = sums;
  d.sums_ld = ld;
  return true;
}

bool lora_delta_aligned(const LoraDelta& d) {
  for (int j = 0; j < d.num_modules; ++j)
    if (d.m[j].col_begin % 8 != 0 || d.m[j].col_end % 8 != 0) return false;
  return true;
}

bool lora_delta_launchable(const LoraDelta& d, int64_t cols, bool vec) {
  if (!vec || !d.seg_start || !d.seg_slot || d.num_modules < 1 || d.num_modules > kLoraMaxModules ||
      d.module_stride > kLoraMaxRank || !lora_delta_aligned(d))
    return false;
  if (d.sums ? d.sums_ld % 4 != 0 || d.sums_ld < cols || !aligned16(d.sums)
             : !d.t || d.splits < 1 || d.splits > kLoraMaxShrinkSplits)
    return false;
  for (int j = 0; j < d.num_modules; ++j)
    if (!d.m[j].b || !d.m[j].ranks || d.m[j].col_begin < 0 || d.m[j].col_end > cols) return false;
  return true;
}

namespace {
bool launchable(const LoraArgs& p, const float* scratch) {
  return lora_supported(p) && p.seg_start && p.seg_slot && scratch;
}
}  // namespace

cudaError_t launch_lora_shrink(const LoraArgs& p, float* scratch, int num_sms, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0) return cudaSuccess;
  if (!launchable(p, scratch)) return cudaErrorInvalidValue;
  const Plan pl = plan_of(p, num_sms);
  return launch(lora_shrink_kernel, dim3(static_cast<unsigned>(pl.tiles), p.num_modules, pl.splits), dim3(kThreads), 0,
                stream, p, pl.slice, pl.thin_splits, pl.thin_slice, scratch);
}

cudaError_t launch_lora_expand(const LoraArgs& p, const float* scratch, int num_sms, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0) return cudaSuccess;
  if (!launchable(p, scratch)) return cudaErrorInvalidValue;
  const Plan pl = plan_of(p, num_sms);
  const int chunks = pl.widths.chunks[kWidths - 1];
  if (chunks > 65535) return cudaErrorInvalidValue;
  return launch(pl.decode ? lora_expand_kernel<true> : lora_expand_kernel<false>,
                dim3(static_cast<unsigned>(pl.tiles), static_cast<unsigned>(chunks)), dim3(kThreads), 0, stream, p,
                pl.widths, pl.splits, scratch, pl.bulk);
}

cudaError_t launch_lora(const LoraArgs& p, float* scratch, int num_sms, Stream stream) {
  const cudaError_t e = launch_lora_shrink(p, scratch, num_sms, stream);
  return e != cudaSuccess ? e : launch_lora_expand(p, scratch, num_sms, stream);
}

}  // namespace ls::cuda
