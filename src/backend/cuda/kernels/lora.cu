// lora.cu: the multi-LoRA op, segment by segment. Block (segment, 16-token tile[, 256-column tile]) of a
// segment's tokens: the shrink stages x and A through shared memory in 128-wide slices of the input and
// accumulates t [16, rank] in fp32; the expand reads t from shared memory and adds t B^T to y. Tiles past a
// segment's end return at once (segment lengths are device data). Correct at every real rank, not yet fast.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora.h"

namespace ls::cuda {
namespace {

constexpr int kTokens = 16;     // tokens per tile
constexpr int kSlice = 128;     // input columns per shrink slice
constexpr int kRankStep = 64;   // ranks per shrink pass
constexpr int kThreads = 256;
constexpr int kCols = 256;      // output columns per expand block

struct Tile {
  int64_t begin, count;
  int slot, rank;
};

__device__ __forceinline__ Tile tile_of(const LoraArgs& p) {
  Tile t{0, 0, -1, 0};
  const int g = blockIdx.x;
  const int32_t slot = p.seg_slot[g];
  if (slot < 0 || slot >= p.num_slots) return t;
  const int64_t seg_begin = p.seg_start[g], seg_end = p.seg_start[g + 1];
  t.begin = seg_begin + static_cast<int64_t>(blockIdx.y) * kTokens;
  t.count = seg_end - t.begin < kTokens ? seg_end - t.begin : kTokens;
  t.slot = slot;
  t.rank = p.ranks[slot];
  return t;
}

__global__ void __launch_bounds__(kThreads) lora_shrink_kernel(LoraArgs p, float* shrunk) {
  __shared__ float xs[kTokens][kSlice];
  __shared__ float as[kRankStep][kSlice + 1];
  pdl_wait();
  pdl_launch_dependents();
  const Tile tile = tile_of(p);
  if (tile.count <= 0 || tile.rank <= 0) return;
  const bf16* x = static_cast<const bf16*>(p.x);
  const bf16* a = static_cast<const bf16*>(p.a[tile.slot]);
  const int tok = threadIdx.x / 16, rl = threadIdx.x % 16;
  for (int r0 = 0; r0 < tile.rank; r0 += kRankStep) {
    float acc[kRankStep / 16] = {};
    for (int64_t k0 = 0; k0 < p.in_dim; k0 += kSlice) {
      for (int e = threadIdx.x; e < kTokens * kSlice; e += kThreads) {
        const int i = e / kSlice, c = e % kSlice;
        const bool ok = i < tile.count && k0 + c < p.in_dim;
        xs[i][c] = ok ? __bfloat162float(x[(tile.begin + i) * p.x_ld + k0 + c]) : 0.0f;
      }
      for (int e = threadIdx.x; e < kRankStep * kSlice; e += kThreads) {
        const int r = e / kSlice, c = e % kSlice;
        const bool ok = r0 + r < tile.rank && k0 + c < p.in_dim;
        as[r][c] = ok ? __bfloat162float(a[(r0 + r) * p.in_dim + k0 + c]) : 0.0f;
      }
      __syncthreads();
      for (int c = 0; c < kSlice; ++c) {
        const float xv = xs[tok][c];
#pragma unroll
        for (int j = 0; j < kRankStep / 16; ++j) acc[j] = fmaf(xv, as[rl + 16 * j][c], acc[j]);
      }
      __syncthreads();
    }
    if (tok < tile.count) {
#pragma unroll
      for (int j = 0; j < kRankStep / 16; ++j) {
        const int r = r0 + rl + 16 * j;
        if (r < tile.rank) shrunk[(tile.begin + tok) * p.max_rank + r] = acc[j];
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads) lora_expand_kernel(LoraArgs p, const float* shrunk) {
  extern __shared__ float ts[];  // [kTokens][rank]
  pdl_wait();
  pdl_launch_dependents();
  const Tile tile = tile_of(p);
  if (tile.count <= 0 || tile.rank <= 0) return;
  for (int e = threadIdx.x; e < kTokens * tile.rank; e += kThreads) {
    const int i = e / tile.rank, r = e % tile.rank;
    ts[e] = i < tile.count ? shrunk[(tile.begin + i) * p.max_rank + r] : 0.0f;
  }
  __syncthreads();
  const int64_t n = static_cast<int64_t>(blockIdx.z) * kCols + threadIdx.x;
  if (n >= p.out_dim) return;
  const bf16* brow = static_cast<const bf16*>(p.b[tile.slot]) + n * tile.rank;
  float acc[kTokens] = {};
  for (int r = 0; r < tile.rank; ++r) {
    const float bv = __bfloat162float(brow[r]);
#pragma unroll
    for (int i = 0; i < kTokens; ++i) acc[i] = fmaf(ts[i * tile.rank + r], bv, acc[i]);
  }
  bf16* y = static_cast<bf16*>(p.y);
#pragma unroll
  for (int i = 0; i < kTokens; ++i) {
    if (i >= tile.count) break;
    bf16* dst = y + (tile.begin + i) * p.y_ld + n;
    *dst = __float2bfloat16_rn(__bfloat162float(*dst) + acc[i]);
  }
}

}  // namespace

cudaError_t launch_lora(const LoraArgs& p, float* shrunk, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0 || p.max_rank <= 0) return cudaSuccess;
  if (!p.seg_start || !p.seg_slot || !p.a || !p.b || !p.ranks || !p.x || !p.y || !shrunk || p.in_dim <= 0 ||
      p.out_dim <= 0 || p.x_ld < p.in_dim || p.y_ld < p.out_dim)
    return cudaErrorInvalidValue;
  const unsigned tiles = ceil_div(p.num_tokens, kTokens);
  if (tiles > 65535) return cudaErrorInvalidValue;
  cudaError_t e = launch(lora_shrink_kernel, dim3(static_cast<unsigned>(p.num_segments), tiles), dim3(kThreads), 0,
                         stream, p, shrunk);
  if (e != cudaSuccess) return e;
  const size_t smem = sizeof(float) * kTokens * p.max_rank;
  if (smem > 48 * 1024) return cudaErrorInvalidValue;
  return launch(lora_expand_kernel, dim3(static_cast<unsigned>(p.num_segments), tiles, ceil_div(p.out_dim, kCols)),
                dim3(kThreads), smem, stream, p, const_cast<const float*>(shrunk));
}

}  // namespace ls::cuda
