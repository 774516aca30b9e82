// lora.cu: the multi-LoRA op on the tensor cores, for 1-3 modules that share x, in two launches.
//
// Tiles. The batch's segments (runs of tokens with one adapter slot; a decode step's tokens are segments of
// their own) are cut into tiles of up to 16 tokens, one mma M. Base-only segments (slot -1) have no tiles. The
// grid's x dimension is an upper bound on the tile count from host scalars (segments + tokens / 16), and each
// block finds its tile by a warp scan over the segments, so CUDA graphs replay the same grid for any mix of
// adapters, ranks and segment lengths; blocks past the last tile, and tiles whose slot has rank 0 for their
// module, return at once.
//
// Shrink, block (tile, module, K split): t = x A^T. 8 warps, each a slice of K; per 64-wide K chunk a lane loads
// 32 bytes of its x rows (g, g + 8) and of its A rows (rank g of each 8-rank group) straight from global memory
// into mma fragments: the 16 physical k a lane holds are spread over the logical k of four m16n8k16 products
// the same way for x and A, so the sum over k is unchanged (x rows are the mma rows, ranks the columns). Ranks
// go in passes of 32 (4 groups; groups past the slot's rank skip their loads and products). The 8 warps' fp32
// sums meet in shared memory; the block writes its K split's partial t [tile tokens, rank] in fp32.
//
// Expand, block (tile, a run of 512-column chunks of one module's output): y += t B^T. The block first sums the
// tile's t over the K splits into shared memory, rounded to bf16 (PEFT rounds the intermediate likewise); each
// warp then owns 64 columns per chunk: per 32 ranks a lane takes its A fragment from shared memory, loads 16
// bytes of each of its 8 B rows, and accumulates in fp32; the product goes through shared memory so that y is
// read and written 16 bytes per lane (one rounding).
//
// Decode with distinct adapters is bound by the adapters' bytes (A and B read once per token); the K splits give
// a step with one shared adapter enough blocks to stream it.
#include <algorithm>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"
#include "backend/lora_weights.h"

namespace ls::cuda {
namespace {

constexpr int kTile = 16;         // tokens per tile (mma M)
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kChunk = 64;        // shrink: K per step of a warp
constexpr int kPassRanks = 32;    // shrink: ranks per pass (4 groups of 8)
constexpr int kColsPerWarp = 64;  // expand: 8 groups of 8 output columns
constexpr int kColsPerBlock = kWarps * kColsPerWarp;
constexpr int kMaxSplits = 8;

struct ExpandChunks {
  int32_t first[kLoraMaxModules + 1];  // module m owns chunks [first[m], first[m + 1])
};

struct TileRef {
  int32_t seg, begin, count;
};

// The tile with index `tile` over the adapter segments (count 0: none). Warp 0 scans, the block gets the result.
__device__ TileRef find_tile(const LoraArgs& p, int tile, int32_t* shared) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    if (lane == 0) shared[2] = 0;
    __syncwarp();
    int total = 0;
    for (int base = 0; base < p.num_segments; base += 32) {
      const int g = base + lane;
      int n = 0, start = 0, end = 0;
      if (g < p.num_segments) {
        const int32_t slot = p.seg_slot[g];
        start = p.seg_start[g];
        end = p.seg_start[g + 1];
        if (slot >= 0 && slot < p.num_slots && end > start) n = (end - start + kTile - 1) / kTile;
      }
      int incl = n;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const int v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
      }
      const int excl = incl - n;
      if (n > 0 && tile >= total + excl && tile < total + incl) {
        const int begin = start + (tile - total - excl) * kTile;
        shared[0] = g;
        shared[1] = begin;
        shared[2] = min(kTile, end - begin);
      }
      total += __shfl_sync(0xffffffffu, incl, 31);
      if (tile < total) break;
    }
  }
  __syncthreads();
  return {shared[0], shared[1], shared[2]};
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

__global__ void __launch_bounds__(kThreads) lora_shrink_kernel(LoraArgs p, int slice, float* partial) {
  __shared__ int32_t tile_info[3];
  __shared__ float red[kWarps][kTile][kPassRanks + 1];
  const TileRef tile = find_tile(p, blockIdx.x, tile_info);
  if (tile.count == 0) return;
  const LoraModuleArgs& mod = p.m[blockIdx.y];
  const int32_t slot = p.seg_slot[tile.seg];
  const int rank = mod.ranks[slot];
  if (rank <= 0) return;
  const bf16* a = static_cast<const bf16*>(mod.a[slot]);
  pdl_wait();
  pdl_launch_dependents();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int64_t k_begin = (static_cast<int64_t>(blockIdx.z) * kWarps + warp) * slice;
  const int64_t k_end = min(p.in_dim, k_begin + slice);
  const bf16* x = static_cast<const bf16*>(p.x);
  const bf16* x_g = x + (tile.begin + g) * p.x_ld;
  const bf16* x_g8 = x + (tile.begin + g + 8) * p.x_ld;
  const bool has_g = g < tile.count, has_g8 = g + 8 < tile.count;
  const int64_t row_stride = static_cast<int64_t>(p.num_modules) * kLoraMaxRank;
  float* out = partial + (static_cast<int64_t>(blockIdx.z) * p.num_tokens * row_stride) + blockIdx.y * kLoraMaxRank;
  for (int r0 = 0; r0 < rank; r0 += kPassRanks) {
    float acc[4][4] = {};
    for (int64_t k = k_begin; k < k_end; k += kChunk) {
      const int64_t k0 = k + t4 * 16, k1 = k0 + 8;
      const bool v0 = k0 < k_end, v1 = k1 < k_end;
      const uint4 xg0 = load16_or_zero(x_g + k0, has_g && v0), xg1 = load16_or_zero(x_g + k1, has_g && v1);
      const uint4 xh0 = load16_or_zero(x_g8 + k0, has_g8 && v0), xh1 = load16_or_zero(x_g8 + k1, has_g8 && v1);
      uint4 w0[4], w1[4];
#pragma unroll
      for (int grp = 0; grp < 4; ++grp) {
        const int r = r0 + grp * 8 + g;
        const bf16* row = a + static_cast<int64_t>(r) * p.in_dim;
        w0[grp] = load16_or_zero(row + k0, r < rank && v0);
        w1[grp] = load16_or_zero(row + k1, r < rank && v1);
      }
#pragma unroll
      for (int grp = 0; grp < 4; ++grp) {
        if (r0 + grp * 8 >= rank) break;  // uniform: the rest of the pass is past the rank
        mma_word(acc[grp], xg0, xh0, w0[grp]);
        mma_word(acc[grp], xg1, xh1, w1[grp]);
      }
    }
#pragma unroll
    for (int grp = 0; grp < 4; ++grp) {
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
      out[(tile.begin + row) * row_stride + r0 + c] = sum;
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

__global__ void __launch_bounds__(kThreads, 2) lora_expand_kernel(LoraArgs p, ExpandChunks chunks, int splits,
                                                                  int iters, const float* partial) {
  __shared__ int32_t tile_info[3];
  __shared__ __align__(16) bf16 ts[kTile][kLoraMaxRank + 8];                 // t, summed over the K splits
  __shared__ __align__(16) float cs[kWarps][kTile][kColsPerWarp + 4];        // each warp's product, for the store
  const TileRef tile = find_tile(p, blockIdx.x, tile_info);
  if (tile.count == 0) return;
  int m = 0;
  while (m + 1 < p.num_modules && static_cast<int>(blockIdx.y) >= chunks.first[m + 1]) ++m;
  const LoraModuleArgs& mod = p.m[m];
  const int32_t slot = p.seg_slot[tile.seg];
  const int rank = mod.ranks[slot];
  const int64_t n_block = static_cast<int64_t>(blockIdx.y - chunks.first[m]) * kColsPerBlock * iters;
  if (rank <= 0 || n_block >= mod.out_dim) return;
  const bf16* b = static_cast<const bf16*>(mod.b[slot]);
  const bool vector = rank % 8 == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0;
  bf16* y = static_cast<bf16*>(mod.y);
  const bool vector_y = mod.y_ld % 8 == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0;
  pdl_wait();
  pdl_launch_dependents();
  // The tile's t [count, rank]: all threads sum the splits' partials at once (zeros past the rank, to a
  // multiple of 32, and past the tile's tokens), rounded to bf16 as the mma's A operand.
  const int kpad = (rank + 31) / 32 * 32;
  const int64_t row_stride = static_cast<int64_t>(p.num_modules) * kLoraMaxRank;
  const int64_t split_stride = static_cast<int64_t>(p.num_tokens) * row_stride;
  for (int e = threadIdx.x; e < kTile * kpad; e += kThreads) {
    const int row = e / kpad, c = e % kpad;
    float v = 0.0f;
    if (row < tile.count && c < rank) {
      const float* src = partial + (tile.begin + row) * row_stride + m * kLoraMaxRank + c;
#pragma unroll
      for (int z = 0; z < kMaxSplits; ++z)
        if (z < splits) v += src[z * split_stride];
    }
    ts[row][c] = __float2bfloat16_rn(v);
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  for (int it = 0; it < iters; ++it) {
    const int64_t n_warp = n_block + (static_cast<int64_t>(it) * kWarps + warp) * kColsPerWarp;
    if (n_warp >= mod.out_dim) break;  // warp-uniform, and no block barrier below
    // The y pieces this lane updates (row, 8 columns) are loaded up front, with the first B words, so that the
    // iteration waits for memory once.
    constexpr int kPieces = kTile * (kColsPerWarp / 8) / 32;
    uint4 y_old[kPieces];
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8);
      const int64_t col = n_warp + q % (kColsPerWarp / 8) * 8;
      const bool whole = vector_y && row < tile.count && col + 8 <= mod.out_dim;
      y_old[i] = whole ? *reinterpret_cast<const uint4*>(y + (tile.begin + row) * mod.y_ld + col) : make_uint4(0, 0, 0, 0);
    }
    float acc[8][4] = {};
    for (int k = 0; k < rank; k += 32) {
      const int kk = k + t4 * 8;
      const uint4 ag = *reinterpret_cast<const uint4*>(&ts[g][kk]);
      const uint4 ah = *reinterpret_cast<const uint4*>(&ts[g + 8][kk]);
      uint4 w[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int64_t n = n_warp + j * 8 + g;
        w[j] = n < mod.out_dim ? load_b_word(b + n * rank, kk, rank, vector) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) mma_word(acc[j], ag, ah, w[j]);
    }
    // Through shared memory, so each lane adds 8 whole columns of one row with 16-byte accesses.
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int c = j * 8 + 2 * t4;
      cs[warp][g][c] = acc[j][0];
      cs[warp][g][c + 1] = acc[j][1];
      cs[warp][g + 8][c] = acc[j][2];
      cs[warp][g + 8][c + 1] = acc[j][3];
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8), c8 = q % (kColsPerWarp / 8) * 8;
      const int64_t col = n_warp + c8;
      if (row >= tile.count || col >= mod.out_dim) continue;
      bf16* dst = y + (tile.begin + row) * mod.y_ld + col;
      const float* c = &cs[warp][row][c8];
      if (vector_y && col + 8 <= mod.out_dim) {
        float v[8];
        unpack8(y_old[i], v);
#pragma unroll
        for (int e = 0; e < 8; ++e) v[e] += c[e];
        store8(dst, v);
      } else {
        for (int e = 0; e < 8 && col + e < mod.out_dim; ++e) dst[e] = __float2bfloat16_rn(__bfloat162float(dst[e]) + c[e]);
      }
    }
    __syncwarp();
  }
}

struct Plan {
  int tiles, splits, slice, iters;
  ExpandChunks chunks;
};

// The grid, from host scalars only: an upper bound on the tiles; K splits so that a batch whose tokens all share
// one adapter (the fewest tiles) still fills half the SMs, each warp's slice at least two chunks; and for the
// expand, 512-column chunks per block so that the grid is a few waves at most.
Plan plan_of(const LoraArgs& p, int num_sms) {
  Plan pl;
  pl.tiles = static_cast<int>(std::min<int64_t>(p.num_tokens, p.num_segments + p.num_tokens / kTile));
  const int64_t fewest = (static_cast<int64_t>(p.num_tokens) + kTile - 1) / kTile * p.num_modules;
  const int64_t by_k = std::max<int64_t>(p.in_dim / (kWarps * 2 * kChunk), 1);
  int64_t s = (num_sms / 2 + fewest - 1) / fewest;
  s = std::min<int64_t>({s, by_k, kMaxSplits});
  pl.splits = static_cast<int>(std::max<int64_t>(s, 1));
  const int64_t per_warp = (p.in_dim + pl.splits * kWarps - 1) / (pl.splits * kWarps);
  pl.slice = static_cast<int>((per_warp + kChunk - 1) / kChunk * kChunk);
  pl.splits = static_cast<int>((p.in_dim + kWarps * pl.slice - 1) / (kWarps * pl.slice));  // none left empty
  int64_t chunks = 0;
  for (int m = 0; m < p.num_modules; ++m) chunks += (p.m[m].out_dim + kColsPerBlock - 1) / kColsPerBlock;
  pl.iters = static_cast<int>(std::clamp<int64_t>(pl.tiles * chunks / (4 * static_cast<int64_t>(num_sms)), 1, 8));
  pl.chunks.first[0] = 0;
  for (int m = 0; m < kLoraMaxModules; ++m) {
    const int64_t per_block = static_cast<int64_t>(kColsPerBlock) * pl.iters;
    const int64_t n = m < p.num_modules ? (p.m[m].out_dim + per_block - 1) / per_block : 0;
    pl.chunks.first[m + 1] = pl.chunks.first[m] + static_cast<int32_t>(n);
  }
  return pl;
}

}  // namespace

bool lora_supported(const LoraArgs& p) {
  if (p.num_modules < 1 || p.num_modules > kLoraMaxModules) return false;
  if (p.in_dim <= 0 || p.in_dim % 8 != 0 || p.x_ld % 8 != 0 || !aligned16(p.x)) return false;
  for (int m = 0; m < p.num_modules; ++m) {
    const LoraModuleArgs& a = p.m[m];
    if (!a.a || !a.b || !a.ranks || !a.y || a.out_dim <= 0 || a.y_ld < a.out_dim) return false;
  }
  return true;
}

int64_t lora_scratch_floats(const LoraArgs& p, int num_sms) {
  return static_cast<int64_t>(plan_of(p, num_sms).splits) * p.num_tokens * p.num_modules * kLoraMaxRank;
}

cudaError_t launch_lora(const LoraArgs& p, float* scratch, int num_sms, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0) return cudaSuccess;
  if (!lora_supported(p) || !p.seg_start || !p.seg_slot || !scratch) return cudaErrorInvalidValue;
  const Plan pl = plan_of(p, num_sms);
  cudaError_t e = launch(lora_shrink_kernel, dim3(static_cast<unsigned>(pl.tiles), p.num_modules, pl.splits),
                         dim3(kThreads), 0, stream, p, pl.slice, scratch);
  if (e != cudaSuccess) return e;
  return launch(lora_expand_kernel,
                dim3(static_cast<unsigned>(pl.tiles), static_cast<unsigned>(pl.chunks.first[p.num_modules])),
                dim3(kThreads), 0, stream, p, pl.chunks, pl.splits, pl.iters, const_cast<const float*>(scratch));
}

}  // namespace ls::cuda
