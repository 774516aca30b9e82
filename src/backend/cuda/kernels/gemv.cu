// gemv.cu: the weight-streaming projection for decode steps of 1 to 4 tokens. A block owns kRows output
// features; its threads split their weight rows and read them with 16-byte loads that bypass L1 (kUnroll x
// kRows loads in flight per thread; the first round issued before the wait for the previous kernel), while the
// few activation rows come through L1; fp32 accumulation, warp then block reduction.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gemv.h"

namespace ls::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRows = 4;     // output features per block
constexpr int kUnroll = 2;   // 16-byte chunks per row in flight per thread, per iteration

// Block = kRows features; its 256 threads split the reduction dimension (thread t takes chunks t, t + 256, ...)
// so that even K = 14336 needs only a few dependent rounds of loads, then reduce through shared memory.
template <int M>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const bf16* __restrict__ x, int64_t ldx,
                                                         const bf16* __restrict__ w, int64_t ldw,
                                                         const bf16* __restrict__ bias, void* __restrict__ out,
                                                         int64_t ldo, bool out_f32, int64_t n, int64_t k) {
  __shared__ float partial[kThreads / 32][M * kRows];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int64_t chunks = k / 8;
  const bf16* wr[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wr[r] = w + (row0 + r < n ? row0 + r : row0) * ldw;
  uint4 wv[kUnroll][kRows];
  auto load_weights = [&](int64_t c0) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + kThreads * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) wv[u][r] = c < chunks ? load_stream16(wr[r] + c * 8) : make_uint4(0, 0, 0, 0);
    }
  };
  // The weights never depend on the previous kernel: the first round is in flight before waiting for it.
  load_weights(threadIdx.x);
  pdl_wait();
  pdl_launch_dependents();
  float acc[M][kRows] = {};
  for (int64_t c0 = threadIdx.x; c0 < chunks; c0 += kThreads * kUnroll) {
    if (c0 != threadIdx.x) load_weights(c0);
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
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float v = warp_sum(acc[mi][r]);
      if (lane == 0) partial[warp][mi * kRows + r] = v;
    }
  __syncthreads();
  if (threadIdx.x >= M * kRows) return;
  const int mi = threadIdx.x / kRows, r = threadIdx.x % kRows;
  const int64_t row = row0 + r;
  if (row >= n) return;
  float v = bias ? __bfloat162float(bias[row]) : 0.0f;
#pragma unroll
  for (int i = 0; i < kThreads / 32; ++i) v += partial[i][threadIdx.x];
  if (out_f32) {
    static_cast<float*>(out)[mi * ldo + row] = v;
  } else {
    static_cast<bf16*>(out)[mi * ldo + row] = __float2bfloat16_rn(v);
  }
}

}  // namespace

bool gemv_supported(int64_t m, int64_t k, const void* x, int64_t ldx, const void* w, int64_t ldw) {
  return m >= 1 && m <= kGemvMaxRows && k % 8 == 0 && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

cudaError_t launch_gemv(const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* out,
                        int64_t ldo, bool out_f32, int64_t m, int64_t n, int64_t k, Stream stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  if (!out || !gemv_supported(m, k, x, ldx, w, ldw) || ldo < n) return cudaErrorInvalidValue;
  const dim3 grid(ceil_div(n, kRows)), block(kThreads);
  const auto* xs = static_cast<const bf16*>(x);
  const auto* ws = static_cast<const bf16*>(w);
  const auto* bs = static_cast<const bf16*>(bias);
  switch (m) {
    case 1: return launch(gemv_kernel<1>, grid, block, 0, stream, xs, ldx, ws, ldw, bs, out, ldo, out_f32, n, k);
    case 2: return launch(gemv_kernel<2>, grid, block, 0, stream, xs, ldx, ws, ldw, bs, out, ldo, out_f32, n, k);
    case 3: return launch(gemv_kernel<3>, grid, block, 0, stream, xs, ldx, ws, ldw, bs, out, ldo, out_f32, n, k);
    default: return launch(gemv_kernel<4>, grid, block, 0, stream, xs, ldx, ws, ldw, bs, out, ldo, out_f32, n, k);
  }
}

}  // namespace ls::cuda
