// rms_norm.cu: RMSNorm over rows, optionally fused with the residual add (residual += x, then normalize the
// rounded residual, as transformers does in bf16), and then optionally with a LoRA's deltas added to x first (in
// place of the expand of the projection that wrote x, or from the sums an expand beside it wrote; lora_delta.cuh).
// One block per row; fp32 sum of squares.
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora_delta.cuh"
#include "backend/cuda/kernels/rms_norm.h"

namespace ls::cuda {
namespace {

template <bool kAdd, bool kVec, bool kDelta>
__global__ void __launch_bounds__(512)
    rms_norm_kernel(bf16* __restrict__ residual, int64_t residual_ld, const bf16* __restrict__ x, int64_t x_ld,
                    const bf16* __restrict__ weight, bf16* __restrict__ out, int64_t out_ld, int64_t cols, float eps,
                    const __grid_constant__ LoraDelta delta) {
  static_assert(!kDelta || (kAdd && kVec), "the deltas take the residual add's vector path");
  __shared__ float scratch[32];
  __shared__ std::conditional_t<kDelta, DeltaRow, char> row;
  const int64_t r = blockIdx.x;
  if constexpr (kDelta) {  // before the wait: the row's slot, and its B rows hinted into L2 (unless summed)
    delta_row(delta, r, row);
    if (row.slot >= 0 && !delta.sums) {
      for (int64_t c = threadIdx.x; c < cols / 8; c += blockDim.x) {
        const int j = delta_module(delta, c * 8);
        if (j >= 0) delta_prefetch8(row, j, c * 8 - delta.m[j].col_begin);
      }
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  if constexpr (kDelta) {
    if (row.slot >= 0 && !delta.sums) delta_stage_t(delta, r, row);
  }
  const bf16* xr = x + r * x_ld;
  bf16* res = kAdd ? residual + r * residual_ld : nullptr;
  // The normalized input: the residual (after the add) or x itself.
  const bf16* src = kAdd ? res : xr;
  float sum = 0.0f;
  if constexpr (kVec) {
    for (int64_t c = threadIdx.x; c < cols / 8; c += blockDim.x) {
      float v[8];
      load8(xr + c * 8, v);
      if constexpr (kDelta) delta_apply8(delta, row, r, c * 8, v);
      if constexpr (kAdd) {
        float a[8];
        load8(res + c * 8, a);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] = __bfloat162float(__float2bfloat16_rn(a[i] + v[i]));
        store8(res + c * 8, v);
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) sum += v[i] * v[i];
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      float v = __bfloat162float(xr[c]);
      if constexpr (kAdd) {
        const bf16 s = __float2bfloat16_rn(__bfloat162float(res[c]) + v);
        res[c] = s;
        v = __bfloat162float(s);
      }
      sum += v * v;
    }
  }
  const float inv = rsqrtf(block_sum(sum, scratch) / static_cast<float>(cols) + eps);
  bf16* o = out + r * out_ld;
  // Each thread re-reads only the elements it wrote itself, so no barrier is needed before this pass.
  if constexpr (kVec) {
    for (int64_t c = threadIdx.x; c < cols / 8; c += blockDim.x) {
      float v[8], w[8];
      load8(src + c * 8, v);
      load8(weight + c * 8, w);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = w[i] * (v[i] * inv);
      store8(o + c * 8, v);
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      o[c] = __float2bfloat16_rn(__bfloat162float(weight[c]) * (__bfloat162float(src[c]) * inv));
  }
}

}  // namespace

cudaError_t launch_rms_norm(void* residual, int64_t residual_ld, const void* x, int64_t x_ld, const void* weight,
                            void* out, int64_t out_ld, int64_t rows, int64_t cols, float eps, const LoraDelta* delta,
                            Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!x || !weight || !out || cols <= 0 || x_ld < cols || out_ld < cols) return cudaErrorInvalidValue;
  if (residual && residual_ld < cols) return cudaErrorInvalidValue;
  bool vec = cols % 8 == 0 && x_ld % 8 == 0 && out_ld % 8 == 0 && aligned16(x) && aligned16(out) && aligned16(weight);
  if (residual) vec = vec && residual_ld % 8 == 0 && aligned16(residual);
  if (delta && (!residual || !lora_delta_launchable(*delta, cols, vec))) return cudaErrorInvalidValue;
  auto* res = static_cast<bf16*>(residual);
  auto* xs = static_cast<const bf16*>(x);
  auto* w = static_cast<const bf16*>(weight);
  auto* o = static_cast<bf16*>(out);
  // With deltas, up to 512 threads: a thread's 8 columns read 8 B rows, so fewer columns each keep the row's
  // wait for B short.
  const int64_t work = vec ? cols / 8 : cols, most = delta ? 512 : 256;
  const int threads = work >= most ? static_cast<int>(most) : static_cast<int>((work + 31) / 32 * 32);
  const dim3 grid(static_cast<unsigned>(rows)), block(threads);
  const LoraDelta none;
  auto run = [&](auto kernel) {
    return launch(kernel, grid, block, 0, stream, res, residual_ld, xs, x_ld, w, o, out_ld, cols, eps,
                  delta ? *delta : none);
  };
  if (delta) return run(rms_norm_kernel<true, true, true>);
  if (residual) return vec ? run(rms_norm_kernel<true, true, false>) : run(rms_norm_kernel<true, false, false>);
  return vec ? run(rms_norm_kernel<false, true, false>) : run(rms_norm_kernel<false, false, false>);
}

}  // namespace ls::cuda
