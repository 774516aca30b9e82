// skinny_gemm.cu: out = x W^T for decode batches of 5..64 rows of x, where the product is a stream over the
// weights. The weights go straight from DRAM into mma.sync A fragments, with no shared memory: lane (g, t4) of a
// warp loads 16 contiguous bytes of weight rows g and g + 8 (k = 8 t4 .. 8 t4 + 7 of a 32-k chunk) and uses them
// as its A elements of two m16n8k16 k-steps. That assigns the k slots of the mma a permutation of the real k
// indices; the x fragments (B, 16-byte loads of x rows through L1, which the block's warps share) use the same
// permutation, so the dot products are unchanged. A warp's 16 weight rows are read whole, in 64-byte pieces per
// row per chunk, several chunks in flight (the earlier version tiled K by 64 through shared memory, and its
// 128-byte row segments spread over 128 rows read DRAM poorly).
// Block = 64 output features (4 m-tiles) x a slice of K, 8 warps: warp w takes m-tile w % 4 and half w / 4 of
// the slice; the halves meet in shared memory. Narrow outputs split K over blocks so the grid fills the GPU:
// each split writes fp32 partials, and the last split of a feature tile to arrive (arrival counter) sums them,
// adds the bias, writes the output and zeroes its counter for the next launch. No atomics on the data.
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/skinny_gemm.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 64;          // output features per block
constexpr int kChunk = 32;         // k per chunk: one 16-byte load per lane and weight row
constexpr int kBlocksPerSm = 2;
constexpr int kMinChunksPerSplit = 8;

struct SkinnyArgs {
  const bf16* x;
  int64_t ldx;
  const bf16* w;
  int64_t ldw;
  const bf16* bias;
  void* out;
  int64_t ldo;
  bool out_f32;
  int m, n, k;
  int chunks_per_split;
  float* partials;    // [splits][m][n] fp32 (splits > 1 only)
  int32_t* arrivals;  // [n / kRows], zero between launches
};

__device__ __forceinline__ uint4 load_x16(const bf16* p) {
  uint4 v;
  // Not volatile: x does not change during the kernel, so the compiler may schedule these freely.
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

__device__ __forceinline__ void store_out(const SkinnyArgs& p, int row, int col, float v) {
  if (p.bias) v += __bfloat162float(p.bias[col]);
  if (p.out_f32) {
    static_cast<float*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = v;
  } else {
    static_cast<bf16*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = __float2bfloat16_rn(v);
  }
}

// NT n-tiles of 8 rows of x (m <= 8 NT); U chunks of weights in flight per lane and row.
template <int NT>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) skinny_gemm_kernel(SkinnyArgs p) {
  constexpr int U = NT <= 4 ? 8 : 4;
  constexpr int kLd = 8 * NT + 1;  // floats per row of the block's result tile (padded)
  __shared__ float tile[kRows][kLd];
  __shared__ bool last;
  pdl_wait();
  pdl_launch_dependents();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3, mt = warp & 3, half = warp >> 2;
  const int n0 = blockIdx.x * kRows, split = blockIdx.y;
  const int total = p.k / kChunk;
  const int c_begin = min(total, split * p.chunks_per_split);
  const int c_end = min(total, c_begin + p.chunks_per_split);
  const int c_mid = c_begin + (c_end - c_begin + 1) / 2;
  const int my_begin = half ? c_mid : c_begin, my_end = half ? c_end : c_mid;

  const bf16* w0 = p.w + static_cast<int64_t>(n0 + mt * 16 + g) * p.ldw + t4 * 8;
  const bf16* w1 = w0 + 8 * p.ldw;
  const bf16* xr[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int row = min(nt * 8 + g, p.m - 1);  // rows past m repeat the last; their results are never stored
    xr[nt] = p.x + static_cast<int64_t>(row) * p.ldx + t4 * 8;
  }
  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;

  auto step = [&](const uint4& wa, const uint4& wb, int c) {
    const uint32_t a0[4] = {wa.x, wb.x, wa.y, wb.y}, a1[4] = {wa.z, wb.z, wa.w, wb.w};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint4 xv = load_x16(xr[nt] + c * kChunk);
      mma_bf16(acc[nt], a0, xv.x, xv.y);
      mma_bf16(acc[nt], a1, xv.z, xv.w);
    }
  };
  int c = my_begin;
  for (; c + U <= my_end; c += U) {
    uint4 wa[U], wb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      wa[u] = load_stream16(w0 + (c + u) * kChunk);
      wb[u] = load_stream16(w1 + (c + u) * kChunk);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) step(wa[u], wb[u], c + u);
  }
  for (; c < my_end; ++c) step(load_stream16(w0 + c * kChunk), load_stream16(w1 + c * kChunk), c);

  // The two halves of K meet in the tile: [feature][x row]. C fragment: features g, g + 8; x rows 2 t4 (+1).
  auto tile_at = [&](int nt, int e) -> float& { return tile[mt * 16 + g + (e >> 1) * 8][nt * 8 + t4 * 2 + (e & 1)]; };
  if (half) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) tile_at(nt, e) = acc[nt][e];
  }
  __syncthreads();
  if (!half) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) tile_at(nt, e) += acc[nt][e];
  }
  __syncthreads();

  // Consecutive threads take consecutive features of one x row: coalesced output rows.
  if (gridDim.y == 1) {
    for (int e = threadIdx.x; e < p.m * kRows; e += kThreads)
      store_out(p, e / kRows, n0 + e % kRows, tile[e % kRows][e / kRows]);
    return;
  }
  for (int e = threadIdx.x; e < p.m * kRows; e += kThreads) {
    const int row = e / kRows, f = e % kRows;
    p.partials[(static_cast<int64_t>(split) * p.m + row) * p.n + n0 + f] = tile[f][row];
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&p.arrivals[blockIdx.x], 1) == static_cast<int>(gridDim.y) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int e = threadIdx.x; e < p.m * kRows; e += kThreads) {
    const int row = e / kRows, f = e % kRows;
    float v = 0.0f;
    for (int s = 0; s < static_cast<int>(gridDim.y); ++s)
      v += __ldcg(&p.partials[(static_cast<int64_t>(s) * p.m + row) * p.n + n0 + f]);
    store_out(p, row, n0 + f, v);
  }
  if (threadIdx.x == 0) p.arrivals[blockIdx.x] = 0;
}

// Splits of K: as many as keep the grid within one wave of resident blocks, at least 8 chunks (256 k) each.
int splits_for(int64_t n, int64_t k, int num_sms) {
  const int64_t tiles = n / kRows, chunks = k / kChunk;
  int64_t splits = static_cast<int64_t>(num_sms) * kBlocksPerSm / tiles;
  if (splits > chunks / kMinChunksPerSplit) splits = chunks / kMinChunksPerSplit;
  if (splits < 1) splits = 1;
  const int64_t per = (chunks + splits - 1) / splits;
  return static_cast<int>((chunks + per - 1) / per);  // no empty splits
}

template <int NT>
cudaError_t launch_typed(const SkinnyArgs& p, int splits, cudaStream_t stream) {
  return launch(skinny_gemm_kernel<NT>, dim3(static_cast<unsigned>(p.n / kRows), static_cast<unsigned>(splits)),
                dim3(kThreads), 0, stream, p);
}

}  // namespace

bool skinny_gemm_supported(int64_t m, int64_t n, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw) {
  return m >= 1 && m <= kSkinnyMaxRows && n > 0 && n % kRows == 0 && n < (int64_t{1} << 30) && k > 0 &&
         k % kChunk == 0 && k < (int64_t{1} << 30) && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

int64_t skinny_gemm_accumulator_floats(int64_t m, int64_t n, int64_t k, int num_sms) {
  const int splits = splits_for(n, k, num_sms);
  return splits > 1 ? splits * m * n : 0;
}

cudaError_t launch_skinny_gemm(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                               int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, float* accumulator,
                               int32_t* arrivals, int num_sms, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  if (!out || !skinny_gemm_supported(m, n, k, x, ldx, w, ldw) || ldo < n || n / kRows > 65536)
    return cudaErrorInvalidValue;
  const int splits = splits_for(n, k, num_sms);
  if (splits > 1 && (!accumulator || !arrivals)) return cudaErrorInvalidValue;
  const int chunks = static_cast<int>(k / kChunk);
  SkinnyArgs p{static_cast<const bf16*>(x), ldx, static_cast<const bf16*>(w), ldw, static_cast<const bf16*>(bias),
               out, ldo, out_f32, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
               (chunks + splits - 1) / splits, accumulator, arrivals};
  if (m <= 8) return launch_typed<1>(p, splits, stream);
  if (m <= 16) return launch_typed<2>(p, splits, stream);
  if (m <= 32) return launch_typed<4>(p, splits, stream);
  return launch_typed<8>(p, splits, stream);
}

}  // namespace ls::cuda
