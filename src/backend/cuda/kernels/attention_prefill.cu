// attention_prefill.cu: flash-attention for prefill chunks on the tensor cores (mma.sync m16n8k16, bf16 in,
// fp32 accumulate). Block (query tile of 64 tokens, head, sequence): 4 warps of 16 query rows each; K and V
// tiles of 64 keys stream through a double-buffered cp.async pipeline into XOR-swizzled shared memory
// (16-byte chunk c of key row r stored at c ^ (r & 7), so ldmatrix reads are conflict-free). S = Q K^T stays
// in registers, the online softmax runs on it there, and its C fragments are the A fragments of P V.
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/dispatch.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockM = 16 * kWarps;  // query rows per block
constexpr int kBlockN = 64;           // keys per tile

// Shared memory of one stage: K and V tiles [kBlockN][D] bf16, chunk-swizzled.
template <int D>
struct PrefillStage {
  bf16 k[kBlockN][D];
  bf16 v[kBlockN][D];
};

template <int D>
__device__ __forceinline__ bf16* swizzled(bf16 (*tile)[D], int row, int chunk) {
  return &tile[row][((chunk ^ (row & 7)) * 8)];
}

// Rows of a block are (query, head) pairs: hg heads that share one KV head (hg = the GQA group when it
// divides 16, else 1) times kBlockM / hg queries, so the block loads each K/V tile once for all of them.
template <int D>
__global__ void __launch_bounds__(kThreads) prefill_kernel(AttentionArgs a, int hg) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kSteps = D / 16;  // k-steps of Q K^T
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* stages = reinterpret_cast<PrefillStage<D>*>(smem_raw);
  pdl_wait();
  pdl_launch_dependents();

  const int seq = blockIdx.z;
  const int64_t head0 = static_cast<int64_t>(blockIdx.y) * hg;
  const int64_t q_begin = a.query_start[seq], qlen = a.query_start[seq + 1] - q_begin;
  const int64_t per_block = kBlockM / hg;  // queries
  // The last query tiles see the most keys: launch them first so short tiles fill the tail.
  const int64_t row0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * per_block;
  if (row0 >= qlen) return;
  const int64_t rows = qlen - row0 < per_block ? qlen - row0 : per_block;
  const int64_t group = a.num_heads / a.num_kv_heads, kvh = head0 / group;
  const int64_t ctx = a.context_lens[seq];
  const KeyRange first = key_range(a, a.positions[q_begin + row0], ctx);
  const KeyRange last = key_range(a, a.positions[q_begin + row0 + rows - 1], ctx);
  const int64_t key_begin = first.begin, key_end = last.end;
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  // This thread's two rows (g and g + 8 of the warp's 16): their query token, head and visible keys.
  int64_t r_idx[2], r_head[2];
  bool r_valid[2];
  KeyRange r_keys[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = warp * 16 + g + i * 8;
    r_idx[i] = row0 + r / hg;
    r_head[i] = head0 + r % hg;
    r_valid[i] = r_idx[i] < qlen;
    r_keys[i] = r_valid[i] ? key_range(a, a.positions[q_begin + r_idx[i]], ctx) : KeyRange{0, 0};
  }
  // Q fragments (A operand), straight from global memory.
  uint32_t qf[kSteps][4];
  const bf16* qbase = static_cast<const bf16*>(a.q);
#pragma unroll
  for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int ri = i & 1, col = kk * 16 + t4 * 2 + (i >> 1) * 8;
      qf[kk][i] = r_valid[ri] ? *reinterpret_cast<const uint32_t*>(qbase + (q_begin + r_idx[ri]) * a.q_ld +
                                                                   r_head[ri] * D + col)
                              : 0u;
    }
  }

  const int n_tiles = key_end > key_begin ? static_cast<int>((key_end - key_begin + kBlockN - 1) / kBlockN) : 0;
  auto load_tile = [&](int t) {
    PrefillStage<D>& st = stages[t & 1];
    const int64_t base = key_begin + static_cast<int64_t>(t) * kBlockN;
#pragma unroll
    for (int i = 0; i < kBlockN * kChunks / kThreads; ++i) {
      const int ci = threadIdx.x + i * kThreads;
      const int r = ci / kChunks, c = ci % kChunks;
      const int64_t key = base + r;
      const bool valid = key < key_end;
      const int64_t off = valid ? cache_offset(a, table, key, kvh) + c * 8 : 0;
      cp_async16(swizzled<D>(st.k, r, c), kc + off, valid);
      cp_async16(swizzled<D>(st.v, r, c), vc + off, valid);
    }
  };

  const float sl2 = a.scale * kLog2e;
  float o[kChunks][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  if (n_tiles > 0) load_tile(0);
  cp_async_commit();
  for (int t = 0; t < n_tiles; ++t) {
    if (t + 1 < n_tiles) load_tile(t + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    PrefillStage<D>& st = stages[t & 1];
    const int64_t tile_base = key_begin + static_cast<int64_t>(t) * kBlockN;

    // S = Q K^T for 8 n-tiles of 8 keys.
    float s[kBlockN / 8][4];
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kSteps; kk += 2) {
        uint32_t b[4];
        const int mi = lane >> 3, r = j * 8 + (lane & 7);
        ldmatrix_x4(b, swizzled<D>(st.k, r, kk * 2 + mi));
        mma_bf16(s[j], qf[kk], b[0], b[1]);
        mma_bf16(s[j], qf[kk + 1], b[2], b[3]);
      }
    }
    // Mask, then the online softmax of rows g (i = 0) and g + 8 (i = 1).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = e >> 1;
        const int64_t key = tile_base + j * 8 + t4 * 2 + (e & 1);
        const bool ok = key >= r_keys[i].begin && key < r_keys[i].end;
        s[j][e] = ok ? s[j][e] * sl2 : -INFINITY;
        mx[i] = fmaxf(mx[i], s[j][e]);
      }
    float alpha[2], m_use[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m[i], mx[i]);
      m_use[i] = m_new == -INFINITY ? 0.0f : m_new;
      alpha[i] = fast_exp2(m[i] - m_use[i]);
      m[i] = m_new;
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = fast_exp2(s[j][e] - m_use[e >> 1]);
        l[e >> 1] += s[j][e];
      }
#pragma unroll
    for (int n = 0; n < kChunks; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    // O += P V: P's C fragments become A fragments, V comes through ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < kChunks; n += 2) {
        uint32_t b[4];
        const int mi = lane >> 3, r = kk * 16 + (mi & 1) * 8 + (lane & 7);
        ldmatrix_x4_trans(b, swizzled<D>(st.v, r, n + (mi >> 1)));
        mma_bf16(o[n], pa, b[0], b[1]);
        mma_bf16(o[n + 1], pa, b[2], b[3]);
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  bf16* obase = static_cast<bf16*>(a.out);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!r_valid[i]) continue;
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    bf16* orow = obase + (q_begin + r_idx[i]) * a.out_ld + r_head[i] * D;
#pragma unroll
    for (int n = 0; n < kChunks; ++n)
      *reinterpret_cast<uint32_t*>(orow + n * 8 + t4 * 2) = pack_bf16(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
  }
}

template <int D>
cudaError_t launch_typed(const AttentionArgs& a, Stream stream) {
  const size_t smem = 2 * sizeof(PrefillStage<D>);
  static const cudaError_t attr = cudaFuncSetAttribute(prefill_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const int hg = 16 % group == 0 ? static_cast<int>(group) : 1;
  const dim3 grid(ceil_div(a.max_query_len, kBlockM / hg), static_cast<unsigned>(a.num_heads / hg),
                  static_cast<unsigned>(a.num_seqs));
  return launch(prefill_kernel<D>, grid, dim3(kThreads), smem, stream, with_block_shift(a), hg);
}

}  // namespace

bool attention_prefill_supported(const AttentionArgs& a) {
  return a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0 && head_dim_instantiated(a.head_dim) &&
         a.q_ld % 2 == 0 && a.out_ld % 2 == 0 && aligned16(a.k_cache) && aligned16(a.v_cache) &&
         (reinterpret_cast<uintptr_t>(a.q) & 3) == 0 && (reinterpret_cast<uintptr_t>(a.out) & 3) == 0;
}

cudaError_t launch_attention_prefill(const AttentionArgs& a, Stream stream) {
  if (a.num_seqs == 0 || a.max_query_len == 0) return cudaSuccess;
  if (!attention_prefill_supported(a) || a.num_seqs > 65535 || a.num_heads > 65535) return cudaErrorInvalidValue;
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_head_dim(a.head_dim, [&](auto d) { result = launch_typed<d.value>(a, stream); });
  return result;
}

}  // namespace ls::cuda
