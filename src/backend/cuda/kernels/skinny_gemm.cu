// skinny_gemm.cu: out = x W^T for decode batches (5..128 rows), where the product is a stream over the weights.
// Block = 128 output features x a slice of K, 8 warps of 16 features each, all of x's rows (MT m-tiles of 16);
// W and x tiles of 64 k stream through a cp.async pipeline into XOR-swizzled shared memory and feed
// mma.sync m16n8k16 (bf16 in, fp32 accumulate) through ldmatrix. Narrow outputs split K so that every SM
// streams (about two blocks per SM); split partial sums meet in an fp32 accumulator with atomics, and the last
// block of a feature tile to arrive writes the output (+ bias) and zeroes the accumulator for the next launch.
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/skinny_gemm.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kBN = 128;  // features per block
constexpr int kBK = 64;   // k per stage: rows of 128 bytes, 8 chunks of 16
constexpr int kBlocksPerSm = 2;

template <int MT>
constexpr int stages() {
  return MT >= 8 ? 3 : 4;  // keeps two blocks per SM in shared memory
}

template <int MT>
struct SkinnyStage {
  bf16 x[MT * 16][kBK];
  bf16 w[kBN][kBK];
};

__device__ __forceinline__ bf16* swz(bf16* tile_row0, int row, int chunk) {
  return tile_row0 + row * kBK + ((chunk ^ (row & 7)) * 8);
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

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
  int chunks_per_split;  // k chunks of kBK per split
  float* acc;            // [m, n] fp32, zero between launches (split > 1 only)
  int32_t* arrivals;     // [n / kBN]
};

__device__ __forceinline__ void store_out(const SkinnyArgs& p, int row, int col, float v) {
  if (p.bias) v += __bfloat162float(p.bias[col]);
  if (p.out_f32) {
    static_cast<float*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = v;
  } else {
    static_cast<bf16*>(p.out)[static_cast<int64_t>(row) * p.ldo + col] = __float2bfloat16_rn(v);
  }
}

template <int MT>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) skinny_gemm_kernel(SkinnyArgs p) {
  constexpr int kStages = stages<MT>();
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* st = reinterpret_cast<SkinnyStage<MT>*>(smem_raw);
  pdl_wait();
  pdl_launch_dependents();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n0 = blockIdx.x * kBN, split = blockIdx.y;
  const int total_chunks = p.k / kBK;
  const int c_begin = split * p.chunks_per_split;
  const int c_end = min(total_chunks, c_begin + p.chunks_per_split);
  const int n_chunks = max(0, c_end - c_begin);

  auto load = [&](int i) {
    SkinnyStage<MT>& s = st[i % kStages];
    const int64_t k0 = static_cast<int64_t>(c_begin + i) * kBK;
#pragma unroll
    for (int j = 0; j < kBN * 8 / kThreads; ++j) {
      const int ci = threadIdx.x + j * kThreads, r = ci >> 3, c = ci & 7;
      cp_async16(swz(&s.w[0][0], r, c), p.w + static_cast<int64_t>(n0 + r) * p.ldw + k0 + c * 8, true);
    }
    for (int ci = threadIdx.x; ci < MT * 16 * 8; ci += kThreads) {
      const int r = ci >> 3, c = ci & 7;
      const bool valid = r < p.m;
      cp_async16(swz(&s.x[0][0], r, c), p.x + (valid ? static_cast<int64_t>(r) * p.ldx + k0 + c * 8 : 0), valid);
    }
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) {
    if (i < n_chunks) load(i);
    cp_async_commit();
  }

  float acc[MT][2][4] = {};
  const int mi = lane >> 3, lr = lane & 7;
  for (int i = 0; i < n_chunks; ++i) {
    if (i + kStages - 1 < n_chunks) load(i + kStages - 1);
    cp_async_commit();
    cp_async_wait<kStages - 1>();
    __syncthreads();
    SkinnyStage<MT>& s = st[i % kStages];
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t b[4];
      ldsm_x4(b, swz(&s.w[0][0], warp * 16 + (mi >> 1) * 8 + lr, 2 * ks + (mi & 1)));
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        uint32_t a[4];
        ldsm_x4(a, swz(&s.x[0][0], mt * 16 + (mi & 1) * 8 + lr, 2 * ks + (mi >> 1)));
        mma16816(acc[mt][0], a, b[0], b[1]);
        mma16816(acc[mt][1], a, b[2], b[3]);
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

  const int g = lane >> 2, t4 = lane & 3;
  if (gridDim.y == 1) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = mt * 16 + g + (e >> 1) * 8, col = n0 + warp * 16 + nt * 8 + t4 * 2 + (e & 1);
          if (row < p.m) store_out(p, row, col, acc[mt][nt][e]);
        }
    return;
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = mt * 16 + g + (e >> 1) * 8, col = n0 + warp * 16 + nt * 8 + t4 * 2 + (e & 1);
        if (row < p.m) atomicAdd(&p.acc[static_cast<int64_t>(row) * p.n + col], acc[mt][nt][e]);
      }
  // The last split of this feature tile writes the sums out and leaves the accumulator zeroed.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&p.arrivals[blockIdx.x], 1) == static_cast<int>(gridDim.y) - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int e = threadIdx.x; e < p.m * kBN; e += kThreads) {
    const int row = e / kBN, col = n0 + e % kBN;
    float* a = &p.acc[static_cast<int64_t>(row) * p.n + col];
    store_out(p, row, col, __ldcg(a));
    *a = 0.0f;
  }
  if (threadIdx.x == 0) p.arrivals[blockIdx.x] = 0;
}

int splits_for(int64_t n, int64_t k, int num_sms) {
  const int64_t tiles = n / kBN, chunks = k / kBK;
  int64_t splits = static_cast<int64_t>(num_sms) * kBlocksPerSm / tiles;
  if (splits > chunks) splits = chunks;
  return static_cast<int>(splits < 1 ? 1 : splits);
}

template <int MT>
cudaError_t launch_typed(const SkinnyArgs& p, int splits, cudaStream_t stream) {
  const size_t smem = sizeof(SkinnyStage<MT>) * stages<MT>();
  static const cudaError_t attr = cudaFuncSetAttribute(skinny_gemm_kernel<MT>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  return launch(skinny_gemm_kernel<MT>, dim3(static_cast<unsigned>(p.n / kBN), static_cast<unsigned>(splits)),
                dim3(kThreads), smem, stream, p);
}

}  // namespace

bool skinny_gemm_supported(int64_t m, int64_t n, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw) {
  return m >= 1 && m <= kSkinnyMaxRows && n > 0 && n % kBN == 0 && n < (int64_t{1} << 30) && k > 0 && k % kBK == 0 &&
         k < (int64_t{1} << 30) && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

int64_t skinny_gemm_accumulator_floats(int64_t m, int64_t n, int64_t k, int num_sms) {
  return splits_for(n, k, num_sms) > 1 ? m * n : 0;
}

cudaError_t launch_skinny_gemm(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                               int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, float* accumulator,
                               int32_t* arrivals, int num_sms, cudaStream_t stream) {
  if (m == 0) return cudaSuccess;
  if (!out || !skinny_gemm_supported(m, n, k, x, ldx, w, ldw) || ldo < n) return cudaErrorInvalidValue;
  const int splits = splits_for(n, k, num_sms);
  if (splits > 1 && (!accumulator || !arrivals)) return cudaErrorInvalidValue;
  const int chunks = static_cast<int>(k / kBK);
  SkinnyArgs p{static_cast<const bf16*>(x), ldx, static_cast<const bf16*>(w), ldw, static_cast<const bf16*>(bias),
               out, ldo, out_f32, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
               (chunks + splits - 1) / splits, accumulator, arrivals};
  if (m <= 16) return launch_typed<1>(p, splits, stream);
  if (m <= 32) return launch_typed<2>(p, splits, stream);
  if (m <= 64) return launch_typed<4>(p, splits, stream);
  return launch_typed<8>(p, splits, stream);
}

}  // namespace ls::cuda
