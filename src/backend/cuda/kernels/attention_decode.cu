// attention_decode.cu: decode attention, one query token per sequence, split-K over the context
// (flash-decoding). Block (split, kv head, sequence) streams its share of the keys through a 3-stage cp.async
// pipeline of 32-token tiles and serves all G query heads of the KV head from one read of K and V. Lanes run
// across head dims (8 per lane); scores go through shared memory, where one warp per head does the online
// softmax. The grid is fixed by host scalars alone (splits from the capacity max_context_len), and each
// sequence splits its real context in-kernel, so CUDA graphs replay it for any context lengths; a combine
// kernel (one block per sequence and head, all in parallel) merges the splits of sequences that used several.
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/dispatch.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 32;            // keys per pipeline stage
constexpr int kStages = 3;
constexpr int kMinKeysPerSplit = 64;
constexpr int kMaxSplits = 64;

struct DecodeParams {
  AttentionArgs a;
  int num_splits;
  float* partial_o;   // [num_seqs][num_heads][num_splits][head_dim]
  float* partial_ml;  // [num_seqs][num_heads][num_splits][2]: running max (log2 domain) and sum
};

struct SplitRange {
  int64_t begin, end;
  int used;  // splits this sequence uses (>= 1)
};

__device__ __forceinline__ SplitRange split_range(const DecodeParams& p, int seq, int split) {
  const int32_t tok = p.a.query_start[seq];
  const KeyRange r = key_range(p.a, p.a.positions[tok], p.a.context_lens[seq]);
  const int64_t n = r.end - r.begin;
  int64_t used = (n + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  if (used > p.num_splits) used = p.num_splits;
  if (used < 1) used = 1;
  const int64_t per = (n + used - 1) / used;
  int64_t begin = r.begin + split * per, end = begin + per;
  if (end > r.end) end = r.end;
  if (begin > end) begin = end;
  return {begin, end, static_cast<int>(used)};
}

template <int D, int G>
struct DecodeSmem {
  bf16 k[kStages][kTile][D];
  bf16 v[kStages][kTile][D];
  float p[G][kTile];   // scores, then probabilities
  float alpha[G];
  float m[G], l[G];
};

template <int D, int G>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(DecodeParams p) {
  constexpr int kLanes = D / 8;                 // lanes per key row
  constexpr int kKeysPerStep = 32 / kLanes;     // keys a warp covers at once
  constexpr int kSteps = kTile / kWarps / kKeysPerStep;
  constexpr int kHeadsPerWarp = (G + kWarps - 1) / kWarps;
  constexpr int kChunksPerTile = kTile * kLanes;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<DecodeSmem<D, G>*>(smem_raw);
  pdl_wait();
  pdl_launch_dependents();

  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const AttentionArgs& a = p.a;
  const SplitRange range = split_range(p, seq, split);
  if (split >= range.used) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int li = lane % kLanes, ks = lane / kLanes;
  const int32_t tok = a.query_start[seq];
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);

  float q[G][8];
  const float qscale = a.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    load8(static_cast<const bf16*>(a.q) + tok * a.q_ld + (kvh * G + g) * D + li * 8, q[g]);
#pragma unroll
    for (int j = 0; j < 8; ++j) q[g][j] *= qscale;
  }

  const int64_t n_keys = range.end - range.begin;
  const int n_tiles = static_cast<int>((n_keys + kTile - 1) / kTile);
  auto load_tile = [&](int t) {
    const int stage = t % kStages;
    const int64_t base = range.begin + static_cast<int64_t>(t) * kTile;
#pragma unroll
    for (int i = 0; i < kChunksPerTile / kThreads; ++i) {
      const int ci = threadIdx.x + i * kThreads;
      const int kl = ci / kLanes, c = ci % kLanes;
      const int64_t key = base + kl;
      const bool valid = key < range.end;
      const int64_t off = valid ? cache_offset(a, table, key, kvh) + c * 8 : 0;
      cp_async16(&sm.k[stage][kl][c * 8], kc + off, valid);
      cp_async16(&sm.v[stage][kl][c * 8], vc + off, valid);
    }
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_tiles) load_tile(s);
    cp_async_commit();
  }

  float acc[G][8] = {};
  float m_run[kHeadsPerWarp], l_run[kHeadsPerWarp];
#pragma unroll
  for (int i = 0; i < kHeadsPerWarp; ++i) {
    m_run[i] = -INFINITY;
    l_run[i] = 0.0f;
  }

  for (int t = 0; t < n_tiles; ++t) {
    if (t + kStages - 1 < n_tiles) load_tile(t + kStages - 1);
    cp_async_commit();
    cp_async_wait<kStages - 1>();
    __syncthreads();
    const int stage = t % kStages;
    const int64_t tile_base = range.begin + static_cast<int64_t>(t) * kTile;
    // Scores of this warp's keys for every head.
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int kl = warp * (kTile / kWarps) + s * kKeysPerStep + ks;
      float kv[8];
      load8(&sm.k[stage][kl][li * 8], kv);
      float dot[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        dot[g] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; ++j) dot[g] = fmaf(q[g][j], kv[j], dot[g]);
#pragma unroll
        for (int o = kLanes / 2; o > 0; o >>= 1) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
      }
      if (li == 0) {
        const bool valid = tile_base + kl < range.end;
#pragma unroll
        for (int g = 0; g < G; ++g) sm.p[g][kl] = valid ? dot[g] : -INFINITY;
      }
    }
    __syncthreads();
    // Online softmax: warp w owns heads w, w + kWarps, ...; lane = key of the tile.
#pragma unroll
    for (int i = 0; i < kHeadsPerWarp; ++i) {
      const int g = warp + i * kWarps;
      if (g >= G) break;
      const float s = sm.p[g][lane];
      const float m_new = fmaxf(m_run[i], warp_max(s));
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = fast_exp2(m_run[i] - m_use);
      const float pr = fast_exp2(s - m_use);
      l_run[i] = l_run[i] * alpha + warp_sum(pr);
      m_run[i] = m_new;
      sm.p[g][lane] = pr;
      if (lane == 0) sm.alpha[g] = alpha;
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float al = sm.alpha[g];
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[g][j] *= al;
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int kl = warp * (kTile / kWarps) + s * kKeysPerStep + ks;
      float vv[8];
      load8(&sm.v[stage][kl][li * 8], vv);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float pr = sm.p[g][kl];
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[g][j] = fmaf(pr, vv[j], acc[g][j]);
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

  // Reduce the accumulators over the key groups of the warp, then over the warps (through the K stage memory).
#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int o = kLanes; o < 32; o <<= 1) acc[g][j] += __shfl_xor_sync(0xffffffffu, acc[g][j], o);
  float* red = reinterpret_cast<float*>(&sm.k[0][0][0]);  // [kWarps][G][D] floats fit in the K stages
  static_assert(sizeof(float) * kWarps * G * D <= sizeof(bf16) * kStages * kTile * D * 2, "reduction buffer");
  __syncthreads();
  if (ks == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g)
#pragma unroll
      for (int j = 0; j < 8; ++j) red[(warp * G + g) * D + li * 8 + j] = acc[g][j];
  }
#pragma unroll
  for (int i = 0; i < kHeadsPerWarp; ++i) {
    const int g = warp + i * kWarps;
    if (g < G && lane == 0) {
      sm.m[g] = m_run[i];
      sm.l[g] = l_run[i];
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += kThreads) {
    const int g = e / D, d = e % D;
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) o += red[(w * G + g) * D + d];
    const int64_t h = kvh * G + g;
    if (range.used == 1) {
      const float l = sm.l[g];
      static_cast<bf16*>(a.out)[tok * a.out_ld + h * D + d] = __float2bfloat16_rn(l > 0.0f ? o / l : 0.0f);
    } else {
      const int64_t row = (static_cast<int64_t>(seq) * a.num_heads + h) * p.num_splits + split;
      p.partial_o[row * D + d] = o;
      if (d == 0) {
        p.partial_ml[row * 2] = sm.m[g];
        p.partial_ml[row * 2 + 1] = sm.l[g];
      }
    }
  }
}

// Merges the splits of one (sequence, head): rescales each partial to the common maximum.
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(DecodeParams p) {
  pdl_wait();
  pdl_launch_dependents();
  const int h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const SplitRange first = split_range(p, seq, 0);
  if (first.used <= 1) return;
  const int64_t row0 = (static_cast<int64_t>(seq) * p.a.num_heads + h) * p.num_splits;
  float m = -INFINITY;
  for (int s = 0; s < first.used; ++s) m = fmaxf(m, p.partial_ml[(row0 + s) * 2]);
  float l = 0.0f, o = 0.0f;
  for (int s = 0; s < first.used; ++s) {
    const float w = fast_exp2(p.partial_ml[(row0 + s) * 2] - m);
    l += w * p.partial_ml[(row0 + s) * 2 + 1];
    o += w * p.partial_o[(row0 + s) * D + d];
  }
  const int32_t tok = p.a.query_start[seq];
  static_cast<bf16*>(p.a.out)[tok * p.a.out_ld + h * D + d] = __float2bfloat16_rn(l > 0.0f ? o / l : 0.0f);
}

// Splits per sequence: as many as fill one wave of resident blocks (about 4 per SM), never a second, partial
// wave of splits (whole waves of blocks are what finish together), and at least 64 keys each.
int decode_splits(const AttentionArgs& a, int num_sms) {
  const int64_t blocks = static_cast<int64_t>(a.num_seqs) * a.num_kv_heads;
  int64_t splits = 4 * static_cast<int64_t>(num_sms) / blocks;
  const int64_t by_context = (a.max_context_len + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  if (splits > by_context) splits = by_context;
  if (splits > kMaxSplits) splits = kMaxSplits;
  return static_cast<int>(splits < 1 ? 1 : splits);
}

template <int D, int G>
cudaError_t launch_typed(const DecodeParams& p, cudaStream_t stream) {
  const size_t smem = sizeof(DecodeSmem<D, G>);
  static const cudaError_t attr = cudaFuncSetAttribute(decode_split_kernel<D, G>,
                                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  const dim3 grid(p.num_splits, static_cast<unsigned>(p.a.num_kv_heads), static_cast<unsigned>(p.a.num_seqs));
  cudaError_t e = launch(decode_split_kernel<D, G>, grid, dim3(kThreads), smem, stream, p);
  if (e != cudaSuccess || p.num_splits == 1) return e;
  const dim3 cgrid(static_cast<unsigned>(p.a.num_heads), static_cast<unsigned>(p.a.num_seqs));
  return launch(decode_combine_kernel<D>, cgrid, dim3(D), 0, stream, p);
}

}  // namespace

bool attention_decode_supported(const AttentionArgs& a) {
  return a.max_query_len == 1 && a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0 &&
         head_dim_instantiated(a.head_dim) && group_instantiated(a.num_heads / a.num_kv_heads) &&
         a.q_ld % 8 == 0 && aligned16(a.q) && aligned16(a.k_cache) && aligned16(a.v_cache);
}

int64_t attention_decode_scratch_floats(const AttentionArgs& a, int num_sms) {
  const int splits = decode_splits(a, num_sms);
  if (splits == 1) return 0;
  return static_cast<int64_t>(a.num_seqs) * a.num_heads * splits * (a.head_dim + 2);
}

cudaError_t launch_attention_decode(const AttentionArgs& a, float* scratch, int num_sms, cudaStream_t stream) {
  if (a.num_seqs == 0) return cudaSuccess;
  if (!attention_decode_supported(a) || a.num_tokens != a.num_seqs) return cudaErrorInvalidValue;
  DecodeParams p;
  p.a = with_block_shift(a);
  p.num_splits = decode_splits(a, num_sms);
  if (p.num_splits > 1 && !scratch) return cudaErrorInvalidValue;
  p.partial_o = scratch;
  p.partial_ml = scratch ? scratch + static_cast<int64_t>(a.num_seqs) * a.num_heads * p.num_splits * a.head_dim
                         : nullptr;
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_head_dim(a.head_dim, [&](auto d) {
    dispatch_group(a.num_heads / a.num_kv_heads, [&](auto g) { result = launch_typed<d.value, g.value>(p, stream); });
  });
  return result;
}

}  // namespace ls::cuda
