// attention_generic.cu: paged causal attention for shapes the fast paths do not instantiate (head dims other
// than 64 and 128, unusual group sizes): one warp per (query token, head). Lanes take one key each for the
// scores and one head dim each (up to 8 per lane) for the weighted sum of V. Slow, simple, any batch.
#include "backend/cuda/kernels/attention_common.cuh"

namespace ls::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kDimsPerLane = kMaxHeadDim / 32;

__global__ void __launch_bounds__(32) generic_kernel(AttentionArgs a) {
  __shared__ float qs[kMaxHeadDim];
  pdl_wait();
  pdl_launch_dependents();
  const int64_t tok = blockIdx.x, h = blockIdx.y;
  const int lane = threadIdx.x;
  // The token's sequence: the last s with query_start[s] <= tok.
  int lo = 0, hi = a.num_seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (a.query_start[mid] <= tok) lo = mid; else hi = mid - 1;
  }
  const int seq = lo;
  const int64_t D = a.head_dim, kvh = h / (a.num_heads / a.num_kv_heads);
  const KeyRange range = key_range(a, a.positions[tok], a.context_lens[seq]);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  const bf16* q = static_cast<const bf16*>(a.q) + tok * a.q_ld + h * D;
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);
  for (int64_t d = lane; d < D; d += 32) qs[d] = __bfloat162float(q[d]) * a.scale * kLog2e;
  __syncwarp();
  float m = -INFINITY, l = 0.0f, acc[kDimsPerLane] = {};
  for (int64_t kb = range.begin; kb < range.end; kb += 32) {
    const int64_t key = kb + lane;
    const bool valid = key < range.end;
    float s = -INFINITY;
    if (valid) {
      const bf16* kr = kc + cache_offset(a, table, key, kvh);
      float dot = 0.0f;
      for (int64_t d = 0; d < D; ++d) dot = fmaf(qs[d], __bfloat162float(kr[d]), dot);
      s = dot;
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float alpha = exp2f(m - m_new);
    const float p = valid ? exp2f(s - m_new) : 0.0f;
    l = l * alpha + warp_sum(p);
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) acc[i] *= alpha;
    const int64_t n = range.end - kb < 32 ? range.end - kb : 32;
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(0xffffffffu, p, j);
      const bf16* vr = vc + cache_offset(a, table, kb + j, kvh);
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) {
        const int64_t d = lane + 32 * i;
        if (d < D) acc[i] = fmaf(pj, __bfloat162float(vr[d]), acc[i]);
      }
    }
    m = m_new;
  }
  bf16* o = static_cast<bf16*>(a.out) + tok * a.out_ld + h * D;
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < D) o[d] = __float2bfloat16_rn(l > 0.0f ? acc[i] / l : 0.0f);
  }
}

}  // namespace

cudaError_t launch_attention_generic(const AttentionArgs& a, Stream stream) {
  if (a.num_tokens == 0) return cudaSuccess;
  if (a.head_dim <= 0 || a.head_dim > kMaxHeadDim || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0 ||
      a.num_heads > 65535 || a.num_seqs <= 0)
    return cudaErrorInvalidValue;
  return launch(generic_kernel, dim3(static_cast<unsigned>(a.num_tokens), static_cast<unsigned>(a.num_heads)),
                dim3(32), 0, stream, with_block_shift(a));
}

}  // namespace ls::cuda
