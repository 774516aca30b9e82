// rope.cu: rotary position embedding (rotate-half layout): x[i], x[i + d/2] rotated by positions[t] *
// inv_freq[i], computed in float32 as transformers does. With kv_slots set the KV heads also store the rotated
// k and the v row in the paged cache. Two kernels:
// - vectorized (head_dim / 2 a multiple of 8, 16-byte aligned rows): block per token, the token's angles to
//   shared memory once, then one thread per (head, 8 rotated pairs) with 16-byte loads and stores (the scalar
//   kernel's 2-byte accesses made a 1024-token prefill's RoPE take 2.5x its bytes' time);
// - scalar (any even head_dim): block (token, group of 8 heads), one thread per rotated pair.
// With LoRA deltas (the vectorized kernel only), the block first finds its token's slot, and each thread adds the
// deltas of its 8 columns as it reads them (lora_delta.cuh), writing v's back as well.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora_delta.cuh"
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

template <bool kDelta>
__global__ void __launch_bounds__(1024) rope_vec_kernel(const __grid_constant__ RopeArgs a) {
  __shared__ __align__(16) float cos_s[kMaxHalf], sin_s[kMaxHalf];
  __shared__ std::conditional_t<kDelta, DeltaRow, char> row;
  const int64_t t = blockIdx.x;
  if constexpr (kDelta) delta_row(a.delta, t, row);  // the token's slot and ranks: before the wait
  pdl_wait();
  pdl_launch_dependents();
  const int half = static_cast<int>(a.head_dim / 2), per_head = half / 8;
  const float pos = static_cast<float>(a.positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) sincosf(pos * a.inv_freq[i], &sin_s[i], &cos_s[i]);
  __syncthreads();
  const int heads = static_cast<int>(a.q_heads + a.kv_heads), q_heads = static_cast<int>(a.q_heads);
  const int64_t slot = a.kv_slots ? a.kv_slots[t] : -1;
  const bool write = slot >= 0 && slot < a.cache_slots;
  bool adapted = false;  // the token has deltas (v is written back)
  if constexpr (kDelta) adapted = row.slot >= 0;
  for (int w = threadIdx.x; w < heads * per_head; w += blockDim.x) {
    const int h = w / per_head, i = (w % per_head) * 8;
    const bool is_q = h < q_heads;
    const int kh = h - q_heads;
    bf16* x = is_q ? static_cast<bf16*>(a.q) + t * a.q_ld + static_cast<int64_t>(h) * a.head_dim
                   : static_cast<bf16*>(a.k) + t * a.k_ld + static_cast<int64_t>(kh) * a.head_dim;
    float x1[8], x2[8], c[8], s[8], r1[8], r2[8];
    load8(x + i, x1);
    load8(x + i + half, x2);
    if constexpr (kDelta) {
      const int64_t col = (is_q ? a.q_col + static_cast<int64_t>(h) * a.head_dim
                                : a.k_col + static_cast<int64_t>(kh) * a.head_dim) + i;
      delta_apply8(a.delta, row, t, col, x1);
      delta_apply8(a.delta, row, t, col + half, x2);
    }
    *reinterpret_cast<float4*>(c) = *reinterpret_cast<const float4*>(&cos_s[i]);
    *reinterpret_cast<float4*>(c + 4) = *reinterpret_cast<const float4*>(&cos_s[i + 4]);
    *reinterpret_cast<float4*>(s) = *reinterpret_cast<const float4*>(&sin_s[i]);
    *reinterpret_cast<float4*>(s + 4) = *reinterpret_cast<const float4*>(&sin_s[i + 4]);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      r1[j] = x1[j] * c[j] - x2[j] * s[j];
      r2[j] = x2[j] * c[j] + x1[j] * s[j];
    }
    const uint4 p1 = pack8(r1), p2 = pack8(r2);
    *reinterpret_cast<uint4*>(x + i) = p1;
    *reinterpret_cast<uint4*>(x + i + half) = p2;
    if (!is_q && (write || adapted)) {
      bf16* v = static_cast<bf16*>(a.v) + t * a.v_ld + static_cast<int64_t>(kh) * a.head_dim;
      uint4 v1 = *reinterpret_cast<const uint4*>(v + i), v2 = *reinterpret_cast<const uint4*>(v + i + half);
      if constexpr (kDelta) {
        if (adapted) {
          const int64_t col = a.v_col + static_cast<int64_t>(kh) * a.head_dim + i;
          float f1[8], f2[8];
          unpack8(v1, f1);
          unpack8(v2, f2);
          delta_apply8(a.delta, row, t, col, f1);
          delta_apply8(a.delta, row, t, col + half, f2);
          v1 = pack8(f1);
          v2 = pack8(f2);
          *reinterpret_cast<uint4*>(v + i) = v1;
          *reinterpret_cast<uint4*>(v + i + half) = v2;
        }
      }
      if (!write) continue;
      const int64_t off = slot * a.kv_heads * a.head_dim + static_cast<int64_t>(kh) * a.head_dim;
      bf16* kc = static_cast<bf16*>(a.k_cache) + off;
      bf16* vc = static_cast<bf16*>(a.v_cache) + off;
      *reinterpret_cast<uint4*>(kc + i) = p1;
      *reinterpret_cast<uint4*>(kc + i + half) = p2;
      *reinterpret_cast<uint4*>(vc + i) = v1;
      *reinterpret_cast<uint4*>(vc + i + half) = v2;
    }
  }
}

}  // namespace

namespace {
bool rope_vec(const RopeArgs& a) {
  const int64_t half = a.head_dim / 2;
  return half % 8 == 0 && a.q_ld % 8 == 0 && a.k_ld % 8 == 0 && aligned16(a.q) && aligned16(a.k) &&
         (!a.kv_slots || (a.v_ld % 8 == 0 && aligned16(a.v) && aligned16(a.k_cache) && aligned16(a.v_cache)));
}
}  // namespace

bool rope_delta_supported(const RopeArgs& a) {
  if (!a.kv_slots || !a.delta.sums || !rope_vec(a) || a.q_col < 0 || a.k_col < 0 || a.v_col < 0) return false;
  const int64_t cols = std::max({a.q_col + a.q_heads * a.head_dim, a.k_col + a.kv_heads * a.head_dim,
                                 a.v_col + a.kv_heads * a.head_dim});
  return lora_delta_launchable(a.delta, cols, true);
}

cudaError_t launch_rope(const RopeArgs& a, Stream stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (!a.positions || !a.q || !a.k || !a.inv_freq || a.head_dim <= 0 || a.head_dim % 2 != 0 ||
      a.head_dim / 2 > kMaxHalf || a.q_ld < a.q_heads * a.head_dim || a.k_ld < a.kv_heads * a.head_dim ||
      a.q_heads + a.kv_heads > 65535)
    return cudaErrorInvalidValue;
  if (a.kv_slots && (!a.v || !a.k_cache || !a.v_cache || a.v_ld < a.kv_heads * a.head_dim)) return cudaErrorInvalidValue;
  const int64_t half = a.head_dim / 2;
  const bool delta = a.delta.num_modules > 0;
  if (delta && !rope_delta_supported(a)) return cudaErrorInvalidValue;
  if (rope_vec(a)) {
    const int64_t work = (a.q_heads + a.kv_heads) * (half / 8);
    const int threads = static_cast<int>(std::min<int64_t>(1024, (work + 31) / 32 * 32));
    return launch(delta ? rope_vec_kernel<true> : rope_vec_kernel<false>, dim3(static_cast<unsigned>(a.num_tokens)),
                  dim3(threads), 0, stream, a);
  }
  const dim3 grid(static_cast<unsigned>(a.num_tokens), ceil_div(a.q_heads + a.kv_heads, kHeadsPerBlock));
  return launch(rope_kernel, grid, dim3(kThreads), 0, stream, a);
}

}  // namespace ls::cuda
