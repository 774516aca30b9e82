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

// x's pairs (i + j, i + half + j), j < 8, rotated by (c, s) and stored back; the rotated words (p1, p2) are what
// the key cache takes.
__device__ __forceinline__ void rotate_store8(bf16* x, int i, int half, const float (&x1)[8], const float (&x2)[8],
                                              const float (&c)[8], const float (&s)[8], uint4& p1, uint4& p2) {
  float r1[8], r2[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    r1[j] = x1[j] * c[j] - x2[j] * s[j];
    r2[j] = x2[j] * c[j] + x1[j] * s[j];
  }
  p1 = pack8(r1);
  p2 = pack8(r2);
  *reinterpret_cast<uint4*>(x + i) = p1;
  *reinterpret_cast<uint4*>(x + i + half) = p2;
}

// KV head kh's columns [i, i + 8) and [i + half, i + half + 8) of the rotated key (k1, k2) and of the value (v1,
// v2) into cache slot `slot`.
__device__ __forceinline__ void cache_store8(const RopeArgs& a, int64_t slot, int kh, int i, int half, uint4 k1,
                                             uint4 k2, uint4 v1, uint4 v2) {
  const int64_t off = slot * a.kv_heads * a.head_dim + static_cast<int64_t>(kh) * a.head_dim;
  bf16* kc = static_cast<bf16*>(a.k_cache) + off;
  bf16* vc = static_cast<bf16*>(a.v_cache) + off;
  *reinterpret_cast<uint4*>(kc + i) = k1;
  *reinterpret_cast<uint4*>(kc + i + half) = k2;
  *reinterpret_cast<uint4*>(vc + i) = v1;
  *reinterpret_cast<uint4*>(vc + i + half) = v2;
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
    float x1[8], x2[8], c[8], s[8];
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
    uint4 p1, p2;
    rotate_store8(x, i, half, x1, x2, c, s, p1, p2);
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
      if (write) cache_store8(a, slot, kh, i, half, p1, p2, v1, v2);
    }
  }
}

constexpr int kSharedRows = 16;        // rows per block of the shared-adapter kernel
constexpr int kSharedRank = 16;        // ranks held in shared memory
constexpr int kSharedMaxHeadDim = 128;

// The shared-adapter kernel (launch_rope_shared): block (head, 16 rows); a thread takes 8 rotated pairs of one
// row. The block's slot (its first row's) has its B rows of the head's columns (k and v for a KV head) in shared
// memory, read once for the block's rows, and each row's t beside them; rows of another slot, or ranks above
// kSharedRank, take their deltas from memory.
__global__ void __launch_bounds__(kSharedRows * kSharedMaxHeadDim / 16)
    rope_shared_kernel(const __grid_constant__ RopeArgs a) {
  __shared__ int slot_of[kSharedRows];
  __shared__ float t_s[kSharedRows][2][kSharedRank];
  __shared__ __align__(16) bf16 b_s[2][kSharedMaxHeadDim * kSharedRank];
  const LoraDelta& d = a.delta;
  const int h = blockIdx.x, q_heads = static_cast<int>(a.q_heads), hd = static_cast<int>(a.head_dim);
  const int half = hd / 2, per_row = half / 8;
  const int first = static_cast<int>(blockIdx.y) * kSharedRows;
  const int count = min(kSharedRows, static_cast<int>(a.num_tokens) - first);
  const bool is_q = h < q_heads;
  const int kh = h - q_heads;
  // The head's columns in the projection's output (q's, or k's and v's) and their modules (one each: module edges
  // fall on head boundaries, launch_rope_shared checks).
  const int64_t col[2] = {is_q ? a.q_col + static_cast<int64_t>(h) * hd : a.k_col + static_cast<int64_t>(kh) * hd,
                          is_q ? -1 : a.v_col + static_cast<int64_t>(kh) * hd};
  int mod[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) mod[e] = col[e] >= 0 ? delta_module(d, col[e]) : -1;
  // Before the wait: the rows' slots, and the block's slot's B rows (not the previous kernel's).
  delta_row_slots(d, first, count, slot_of);
  const int s0 = slot_of[0];  // the block's first row's: in a batch sharing one adapter, every row's but padding
  int rank0[2], held[2];  // s0's ranks; those at most kSharedRank (0 otherwise)
  const bf16* b[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    rank0[e] = mod[e] >= 0 && s0 >= 0 ? delta_rank(d, mod[e], s0) : 0;
    held[e] = rank0[e] <= kSharedRank ? rank0[e] : 0;
    b[e] = held[e] > 0 ? static_cast<const bf16*>(d.m[mod[e]].b[s0]) + (col[e] - d.m[mod[e]].col_begin) * held[e]
                       : static_cast<const bf16*>(a.q);
  }
  // Transposed, [rank][column]: a thread's 8 columns at rank k are one 16-byte word, and the words of a warp's
  // threads (consecutive column groups) fall in different banks. Each element's load is unconditional (B's first,
  // or q's, where its value is not taken), so that all are in flight together: a load under a branch waits for its
  // value at the join. The block has kSharedRows head_dim / 16 threads, so each takes kPer elements of a module.
  constexpr int kPer = kSharedRank * 16 / kSharedRows;
  bf16 staged[2][kPer];
#pragma unroll
  for (int e = 0; e < 2; ++e)
#pragma unroll
    for (int p = 0; p < kPer; ++p) {
      const int i = threadIdx.x + p * blockDim.x, c = i / kSharedRank, k = i % kSharedRank;
      staged[e][p] = b[e][k < held[e] ? c * held[e] + k : 0];
    }
#pragma unroll
  for (int e = 0; e < 2; ++e)
#pragma unroll
    for (int p = 0; p < kPer; ++p) {
      const int i = threadIdx.x + p * blockDim.x, c = i / kSharedRank, k = i % kSharedRank;
      b_s[e][k * hd + c] = k < held[e] ? staged[e][p] : __float2bfloat16_rn(0.0f);
    }
  pdl_wait();
  pdl_launch_dependents();
  {
    constexpr int kFewestThreads = kSharedRows * 64 / 16;  // at head_dim 64
    delta_stage_rows_t<kSharedRows, kSharedRank, kSharedRows * 2 * kSharedRank / kFewestThreads>(
        d, first, count, s0, slot_of, mod, held, t_s);
  }
  const int row = threadIdx.x / per_row, i = (threadIdx.x % per_row) * 8;
  if (row >= count) return;
  const int64_t t = first + row;
  const int slot = slot_of[row];
  // Adds module e's deltas of columns [c, c + 8) of the head (c relative to its first column) to v.
  auto add_delta = [&](int e, int c, float (&v)[8]) {
    if (slot < 0 || mod[e] < 0) return;
    float acc[8] = {};
    if (slot == s0 && rank0[e] <= kSharedRank) {
      if (rank0[e] == 0) return;
      const float* tk = t_s[row][e];
#pragma unroll
      for (int k = 0; k < kSharedRank; ++k) {
        float w[8];
        unpack8(*reinterpret_cast<const uint4*>(&b_s[e][k * hd + c]), w);
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[j] += tk[k] * w[j];
      }
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[j] = delta_in_memory(d, mod[e], slot, t, col[e] + c + j);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = __bfloat162float(__float2bfloat16_rn(v[j] + acc[j]));
  };
  const float pos = static_cast<float>(a.positions[t]);
  float c8[8], s8[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) sincosf(pos * a.inv_freq[i + j], &s8[j], &c8[j]);
  bf16* x = is_q ? static_cast<bf16*>(a.q) + t * a.q_ld + static_cast<int64_t>(h) * hd
                 : static_cast<bf16*>(a.k) + t * a.k_ld + static_cast<int64_t>(kh) * hd;
  float x1[8], x2[8];
  load8(x + i, x1);
  load8(x + i + half, x2);
  add_delta(0, i, x1);
  add_delta(0, i + half, x2);
  uint4 p1, p2;
  rotate_store8(x, i, half, x1, x2, c8, s8, p1, p2);
  if (is_q) return;
  const int64_t kv_slot = a.kv_slots[t];
  const bool write = kv_slot >= 0 && kv_slot < a.cache_slots;
  bf16* v = static_cast<bf16*>(a.v) + t * a.v_ld + static_cast<int64_t>(kh) * hd;
  uint4 v1 = *reinterpret_cast<const uint4*>(v + i), v2 = *reinterpret_cast<const uint4*>(v + i + half);
  if (slot >= 0 && mod[1] >= 0) {  // the v row as an expand into it would leave it
    float f1[8], f2[8];
    unpack8(v1, f1);
    unpack8(v2, f2);
    add_delta(1, i, f1);
    add_delta(1, i + half, f2);
    v1 = pack8(f1);
    v2 = pack8(f2);
    *reinterpret_cast<uint4*>(v + i) = v1;
    *reinterpret_cast<uint4*>(v + i + half) = v2;
  }
  if (write) cache_store8(a, kv_slot, kh, i, half, p1, p2, v1, v2);
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

bool rope_shared_supported(const RopeArgs& a) {
  const LoraDelta& d = a.delta;
  if (!a.kv_slots || d.sums || !d.t || d.num_modules < 1 || d.splits != 1 || !rope_vec(a) ||
      a.head_dim > kSharedMaxHeadDim || a.head_dim % 32 != 0 || a.head_dim < 64 || a.q_col < 0 || a.k_col < 0 ||
      a.v_col < 0 || a.v_ld % 8 != 0)
    return false;
  // Every module's columns are whole heads of one of q, k and v (a head's B rows are one module's).
  for (int j = 0; j < d.num_modules; ++j) {
    if (!d.m[j].b || !d.m[j].ranks) return false;
    const int64_t b = d.m[j].col_begin, e = d.m[j].col_end;
    const bool in_q = b >= a.q_col && e <= a.q_col + a.q_heads * a.head_dim;
    const bool in_k = b >= a.k_col && e <= a.k_col + a.kv_heads * a.head_dim;
    const bool in_v = b >= a.v_col && e <= a.v_col + a.kv_heads * a.head_dim;
    const int64_t base = in_q ? a.q_col : in_k ? a.k_col : a.v_col;
    if (!(in_q || in_k || in_v) || (b - base) % a.head_dim != 0 || (e - base) % a.head_dim != 0) return false;
  }
  return true;
}

cudaError_t launch_rope_shared(const RopeArgs& a, Stream stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (!a.positions || !a.q || !a.k || !a.inv_freq || !a.v || !a.k_cache || !a.v_cache ||
      a.q_heads + a.kv_heads > 65535 || !rope_shared_supported(a))
    return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.q_heads + a.kv_heads), ceil_div(a.num_tokens, kSharedRows));
  return launch(rope_shared_kernel, grid, dim3(static_cast<unsigned>(kSharedRows * a.head_dim / 16)), 0, stream, a);
}

}  // namespace ls::cuda
