// rope.cu: rotary position embedding (rotate-half layout): x[i], x[i + d/2] rotated by positions[t] *
// inv_freq[i], computed in float32 as transformers does. One block per token; the angles go to shared memory
// once and serve every head. With kv_slots set it also stores the rotated k and v rows in the paged cache.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/rope.h"

namespace ls::cuda {
namespace {

constexpr int kMaxHalf = 256;

__global__ void rope_kernel(RopeArgs a) {
  __shared__ float cos_s[kMaxHalf], sin_s[kMaxHalf];
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int64_t half = a.head_dim / 2;
  const float pos = static_cast<float>(a.positions[t]);
  for (int64_t i = threadIdx.x; i < half; i += blockDim.x) sincosf(pos * a.inv_freq[i], &sin_s[i], &cos_s[i]);
  __syncthreads();
  const int64_t width = a.kv_heads * a.head_dim;
  const int64_t slot = a.kv_slots ? a.kv_slots[t] : -1;
  const bool write = slot >= 0 && slot < a.cache_slots;
  bf16* q = static_cast<bf16*>(a.q) + t * a.q_ld;
  bf16* k = static_cast<bf16*>(a.k) + t * a.k_ld;
  bf16* kc = write ? static_cast<bf16*>(a.k_cache) + slot * width : nullptr;
  const int64_t pairs = (a.q_heads + a.kv_heads) * half;
  for (int64_t p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int64_t h = p / half, i = p - h * half;
    const bool is_q = h < a.q_heads;
    bf16* x = is_q ? q + h * a.head_dim : k + (h - a.q_heads) * a.head_dim;
    const float x1 = __bfloat162float(x[i]), x2 = __bfloat162float(x[i + half]);
    const bf16 r1 = __float2bfloat16_rn(x1 * cos_s[i] - x2 * sin_s[i]);
    const bf16 r2 = __float2bfloat16_rn(x2 * cos_s[i] + x1 * sin_s[i]);
    x[i] = r1;
    x[i + half] = r2;
    if (!is_q && write) {
      const int64_t off = (h - a.q_heads) * a.head_dim;
      kc[off + i] = r1;
      kc[off + i + half] = r2;
    }
  }
  if (write) {
    const bf16* v = static_cast<const bf16*>(a.v) + t * a.v_ld;
    bf16* vc = static_cast<bf16*>(a.v_cache) + slot * width;
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) vc[c] = v[c];
  }
}

}  // namespace

cudaError_t launch_rope(const RopeArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (!a.positions || !a.q || !a.k || !a.inv_freq || a.head_dim <= 0 || a.head_dim % 2 != 0 ||
      a.head_dim / 2 > kMaxHalf || a.q_ld < a.q_heads * a.head_dim || a.k_ld < a.kv_heads * a.head_dim)
    return cudaErrorInvalidValue;
  if (a.kv_slots && (!a.v || !a.k_cache || !a.v_cache || a.v_ld < a.kv_heads * a.head_dim)) return cudaErrorInvalidValue;
  return launch(rope_kernel, dim3(static_cast<unsigned>(a.num_tokens)), dim3(128), 0, stream, a);
}

}  // namespace ls::cuda
