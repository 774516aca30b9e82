// rope.cu: rotary position embedding (rotate-half layout): x[i], x[i + d/2] rotated by positions[t] *
// inv_freq[i], computed in float32 as transformers does. Block (token, group of 8 heads): the angles go to
// shared memory once per block, one thread per rotated pair, so a decode step (one token) still spreads over
// several blocks and a prefill computes each angle a few times rather than once per head. With kv_slots set
// the KV-head pairs also store the rotated k and the v row in the paged cache.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/rope.h"

namespace ls::cuda {
namespace {

constexpr int kMaxHalf = 256;
constexpr int kHeadsPerBlock = 8;
constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) rope_kernel(RopeArgs a) {
  __shared__ float cos_s[kMaxHalf], sin_s[kMaxHalf];
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x, half = a.head_dim / 2;
  const float pos = static_cast<float>(a.positions[t]);
  for (int64_t i = threadIdx.x; i < half; i += kThreads) sincosf(pos * a.inv_freq[i], &sin_s[i], &cos_s[i]);
  __syncthreads();
  const int64_t heads = a.q_heads + a.kv_heads, h0 = static_cast<int64_t>(blockIdx.y) * kHeadsPerBlock;
  const int64_t slot = a.kv_slots ? a.kv_slots[t] : -1;
  const bool write = slot >= 0 && slot < a.cache_slots;
  for (int64_t p = threadIdx.x; p < kHeadsPerBlock * half; p += kThreads) {
    const int64_t h = h0 + p / half, i = p % half;
    if (h >= heads) break;
    const bool is_q = h < a.q_heads;
    const int64_t kh = h - a.q_heads;
    bf16* x = is_q ? static_cast<bf16*>(a.q) + t * a.q_ld + h * a.head_dim
                   : static_cast<bf16*>(a.k) + t * a.k_ld + kh * a.head_dim;
    const float x1 = __bfloat162float(x[i]), x2 = __bfloat162float(x[i + half]);
    const bf16 r1 = __float2bfloat16_rn(x1 * cos_s[i] - x2 * sin_s[i]);
    const bf16 r2 = __float2bfloat16_rn(x2 * cos_s[i] + x1 * sin_s[i]);
    x[i] = r1;
    x[i + half] = r2;
    if (!is_q && write) {
      const int64_t off = slot * a.kv_heads * a.head_dim + kh * a.head_dim;
      bf16* kc = static_cast<bf16*>(a.k_cache) + off;
      bf16* vc = static_cast<bf16*>(a.v_cache) + off;
      const bf16* v = static_cast<const bf16*>(a.v) + t * a.v_ld + kh * a.head_dim;
      kc[i] = r1;
      kc[i + half] = r2;
      vc[i] = v[i];
      vc[i + half] = v[i + half];
    }
  }
}

}  // namespace

cudaError_t launch_rope(const RopeArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (!a.positions || !a.q || !a.k || !a.inv_freq || a.head_dim <= 0 || a.head_dim % 2 != 0 ||
      a.head_dim / 2 > kMaxHalf || a.q_ld < a.q_heads * a.head_dim || a.k_ld < a.kv_heads * a.head_dim ||
      a.q_heads + a.kv_heads > 65535)
    return cudaErrorInvalidValue;
  if (a.kv_slots && (!a.v || !a.k_cache || !a.v_cache || a.v_ld < a.kv_heads * a.head_dim)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.num_tokens), ceil_div(a.q_heads + a.kv_heads, kHeadsPerBlock));
  return launch(rope_kernel, grid, dim3(kThreads), 0, stream, a);
}

}  // namespace ls::cuda
