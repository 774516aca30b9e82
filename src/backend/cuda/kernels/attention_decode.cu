// attention_decode.cu: decode attention, one query token per sequence, split-K over the context
// (flash-decoding), on the tensor cores. Block (split, kv head, sequence) has 4 warps; each warp streams every
// 4th 16-key tile of the split through its own 3-stage cp.async pipeline (no block barriers in the loop) and
// computes, per tile:
//   S^T = K Q^T     mma m16n8k16: the 16 keys are the rows (A, ldmatrix of the K tile), the G <= 8 query
//                   heads of the KV head the columns (B, Q held in registers for the whole split);
//   online softmax  in fp32, exp2 domain, per head (column): 3 shuffles per column for the tile maximum;
//   O^T += V^T P^T  the head dims are the rows (A, ldmatrix.trans of the V tile), the heads the columns (B: the
//                   probabilities, whose C fragments become B fragments through movmatrix.trans).
// So a 16-key tile costs D/8 ldmatrix, D/8 mma and a handful of shuffles per warp instead of per-key dot
// product reductions. Tiles are aligned to 16 keys, so with block sizes that are multiples of 16 a tile lies in
// one page and one table read addresses it. The 4 warps merge their (max, sum, O) through shared memory at the
// end. The grid is fixed by host scalars alone (splits from the capacity max_context_len), and each sequence
// splits its real context in-kernel, so CUDA graphs replay it for any context lengths; a combine kernel (one
// block per sequence and head) merges the splits of sequences that used several.
// The older CUDA-core kernel (lanes across head dims, per-key shuffle reductions) stays as DecodeKernel::kSimt
// for comparison (tests and benchmarks select it through AttentionArgs::decode_kernel, from CudaBackendOptions).
#include "backend/cuda/kernels/attention_common.cuh"
#include "backend/cuda/kernels/dispatch.h"

namespace ls::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileKeys = 16;  // keys per tile: one mma M, and one page of a block size 16 cache
constexpr int kStages = 3;     // per warp (tensor-core kernel)
constexpr int kMinKeysPerSplit = 64;
constexpr int kMaxSplits = 64;

struct DecodeParams {
  AttentionArgs a;
  int num_splits;
  bool paged16;       // block_size % 16 == 0: every 16-key tile lies in one page
  float* partial_o;   // [num_seqs][num_heads][num_splits][head_dim]
  float* partial_ml;  // [num_seqs][num_heads][num_splits][2]: running max (log2 domain) and sum
};

// The keys split `split` of a sequence covers: whole 16-key tiles [tile_begin, tile_end) (absolute tile
// indices), of which the keys [key_begin, key_end) are visible. `used` splits are non-empty.
struct SplitRange {
  int32_t key_begin, key_end, tile_begin, tile_end;
  int used;
};

__device__ __forceinline__ SplitRange split_range(const DecodeParams& p, int seq, int split) {
  const int32_t tok = p.a.query_start[seq];
  const KeyRange r = key_range(p.a, p.a.positions[tok], p.a.context_lens[seq]);
  const int32_t kb = static_cast<int32_t>(r.begin), ke = static_cast<int32_t>(r.end);
  const int32_t t0 = kb / kTileKeys, t1 = ke > kb ? (ke + kTileKeys - 1) / kTileKeys : t0;
  const int32_t n_tiles = t1 - t0;
  int32_t used = (ke - kb + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  if (used > p.num_splits) used = p.num_splits;
  if (used < 1) used = 1;
  const int32_t per = n_tiles > 0 ? (n_tiles + used - 1) / used : 1;
  if (n_tiles > 0) used = (n_tiles + per - 1) / per;  // no empty splits
  int32_t tb = t0 + split * per, te = tb + per;
  if (te > t1) te = t1;
  if (tb > te) tb = te;
  int32_t key_b = tb * kTileKeys, key_e = te * kTileKeys;
  if (key_b < kb) key_b = kb;
  if (key_e > ke) key_e = ke;
  if (key_b > key_e) key_b = key_e;
  return {key_b, key_e, tb, te, static_cast<int>(used)};
}

// Writes a block's result for (sequence, head h, split): the output row when the sequence used one split, else
// the unnormalized partial with its max and sum for the combine kernel.
__device__ __forceinline__ void store_result(const DecodeParams& p, int seq, int split, int used, int64_t h, int d,
                                             int D, float o, float m, float l) {
  const AttentionArgs& a = p.a;
  if (used == 1) {
    const int32_t tok = a.query_start[seq];
    static_cast<bf16*>(a.out)[tok * a.out_ld + h * D + d] = __float2bfloat16_rn(l > 0.0f ? o / l : 0.0f);
  } else {
    const int64_t row = (static_cast<int64_t>(seq) * a.num_heads + h) * p.num_splits + split;
    p.partial_o[row * D + d] = o;
    if (d == 0) {
      p.partial_ml[row * 2] = m;
      p.partial_ml[row * 2 + 1] = l;
    }
  }
}

// ---- Tensor-core kernel ----

template <int D>
struct MmaStage {
  bf16 k[kTileKeys][D];  // 16-byte chunk c of row r stored at chunk c ^ (r & 7): conflict-free ldmatrix
  bf16 v[kTileKeys][D];
};

template <int D, int G>
constexpr size_t mma_smem_bytes() {
  return sizeof(MmaStage<D>) * kStages * kWarps;
}

template <int D, int G>
__global__ void __launch_bounds__(kThreads) decode_mma_kernel(DecodeParams p) {
  static_assert(G <= 8, "the query heads of a KV head are the 8 columns of the mma");
  constexpr int kChunks = D / 8;                    // 16-byte chunks per key row
  constexpr int kRowsPerCopy = 32 / kChunks;        // key rows one warp-wide copy covers
  constexpr int kCopies = kTileKeys / kRowsPerCopy;
  constexpr int kK = D / 16;                        // k-steps of S, m-tiles of O
  static_assert(sizeof(float) * kWarps * G * (D + 2) <= mma_smem_bytes<D, G>(), "merge buffer");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const int split = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const AttentionArgs& a = p.a;
  // The batch metadata (query starts, positions, context lengths, block tables) is uploaded before the step and
  // no kernel writes it, so the split range and the first page-table entries are read before waiting on the
  // previous kernel (the RoPE + KV write, whose q and cache rows are read only after pdl_wait): the chain of
  // dependent metadata loads overlaps that kernel's tail instead of adding to this one's ramp.
  const SplitRange r = split_range(p, seq, split);
  if (split >= r.used) return;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  MmaStage<D>* stages = reinterpret_cast<MmaStage<D>*>(smem_raw) + warp * kStages;
  const int32_t tok = a.query_start[seq];
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  const bf16* kc = static_cast<const bf16*>(a.k_cache);
  const bf16* vc = static_cast<const bf16*>(a.v_cache);
  const int n_tiles = r.tile_end - r.tile_begin;
  const int my_tiles = n_tiles > warp ? (n_tiles - warp + kWarps - 1) / kWarps : 0;
  const uint32_t bs = static_cast<uint32_t>(a.block_size);
  auto tile_key0 = [&](int j) { return static_cast<uint32_t>((r.tile_begin + warp + j * kWarps) * kTileKeys); };
  auto page_of = [&](uint32_t key) { return a.block_shift >= 0 ? key >> a.block_shift : key / bs; };
  // Page-table entries of this warp's next 32 tiles, one per lane (paged16 only), read ahead so that the
  // copies of a tile never wait on a dependent table load.
  int32_t pages = p.paged16 && lane < my_tiles ? table[page_of(tile_key0(lane))] : 0;
  pdl_wait();
  pdl_launch_dependents();

  // Q^T as the B operand: lane (g, t4) holds head g's dims 16 kk + 2 t4 (+1) and + 8; heads >= G are zero.
  uint32_t qb[kK][2];
  {
    const bf16* qrow = static_cast<const bf16*>(a.q) + tok * a.q_ld + (static_cast<int64_t>(kvh) * G + g) * D;
#pragma unroll
    for (int kk = 0; kk < kK; ++kk) {
      qb[kk][0] = g < G ? *reinterpret_cast<const uint32_t*>(qrow + kk * 16 + t4 * 2) : 0u;
      qb[kk][1] = g < G ? *reinterpret_cast<const uint32_t*>(qrow + kk * 16 + 8 + t4 * 2) : 0u;
    }
  }

  const int64_t row_stride = a.num_kv_heads * D;  // elements between consecutive slots
  const int crow = lane / kChunks, cch = lane % kChunks;
  // This lane's chunk of KV head kvh, slot 0; a row's address is one 32x32->64-bit multiply-add away.
  const bf16* kbase = kc + static_cast<int64_t>(kvh) * D + cch * 8;
  const bf16* vbase = vc + static_cast<int64_t>(kvh) * D + cch * 8;
  auto load_tile = [&](int j, MmaStage<D>& st) {
    const uint32_t key0 = tile_key0(j);
    const uint32_t n_valid = static_cast<uint32_t>(r.key_end - r.key_begin);
    if (p.paged16) {
      if ((j & 31) == 0 && j > 0) pages = j + lane < my_tiles ? table[page_of(tile_key0(j + lane))] : 0;
      const uint32_t page = __shfl_sync(0xffffffffu, pages, j & 31);
      const uint32_t slot0 = page * bs + (key0 - page_of(key0) * bs);
#pragma unroll
      for (int i = 0; i < kCopies; ++i) {
        const int row = i * kRowsPerCopy + crow;
        const bool valid = key0 + row - static_cast<uint32_t>(r.key_begin) < n_valid;  // others are zero-filled
        const uint32_t slot = slot0 + row;
        const int sc = (cch ^ (row & 7)) * 8;
        cp_async16(&st.k[row][sc], valid ? kbase + slot * row_stride : kc, valid);
        cp_async16(&st.v[row][sc], valid ? vbase + slot * row_stride : vc, valid);
      }
    } else {
#pragma unroll
      for (int i = 0; i < kCopies; ++i) {
        const int row = i * kRowsPerCopy + crow;
        const uint32_t key = key0 + row;
        const bool valid = key - static_cast<uint32_t>(r.key_begin) < n_valid;
        const uint32_t pg = page_of(key);
        const uint32_t slot = valid ? static_cast<uint32_t>(table[pg]) * bs + (key - pg * bs) : 0;
        const int sc = (cch ^ (row & 7)) * 8;
        cp_async16(&st.k[row][sc], valid ? kbase + slot * row_stride : kc, valid);
        cp_async16(&st.v[row][sc], valid ? vbase + slot * row_stride : vc, valid);
      }
    }
  };

  float o[kK][4] = {};
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // heads 2 t4 and 2 t4 + 1
  const float sl2 = a.scale * kLog2e;
  const int arow = (lane & 7) + ((lane >> 3) & 1) * 8, achunk = lane >> 4;         // K tile as A
  const int vrow = (lane & 7) + (lane >> 4) * 8, vchunk = (lane >> 3) & 1;         // V tile as A^T
  const int swz = lane & 7;  // arow & 7 == vrow & 7

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < my_tiles) load_tile(s, stages[s]);
    cp_async_commit();
  }
  int stage = 0;
  for (int j = 0; j < my_tiles; ++j) {
    // The stage this refills was read in the previous iteration, which ended with __syncwarp.
    if (j + kStages - 1 < my_tiles) load_tile(j + kStages - 1, stages[stage == 0 ? kStages - 1 : stage - 1]);
    cp_async_commit();
    cp_async_wait<kStages - 1>();
    __syncwarp();
    const MmaStage<D>& st = stages[stage];

    // S^T: two accumulators halve the dependent mma chain.
    float s0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int kk = 0; kk < kK; ++kk) {
      uint32_t af[4];
      ldmatrix_x4(af, &st.k[arow][((2 * kk + achunk) ^ swz) * 8]);
      if (kk & 1)
        mma_bf16(s1, af, qb[kk][0], qb[kk][1]);
      else
        mma_bf16(s0, af, qb[kk][0], qb[kk][1]);
    }
    // Lane (g, t4) holds keys g and g + 8 of the tile for heads 2 t4 and 2 t4 + 1: e = (key half) * 2 + head.
    const int32_t key0 = (r.tile_begin + warp + j * kWarps) * kTileKeys;
    float sc[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int32_t key = key0 + g + (e >> 1) * 8;
      sc[e] = key >= r.key_begin && key < r.key_end ? (s0[e] + s1[e]) * sl2 : -INFINITY;
    }
    float alpha[2];
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      float mx = fmaxf(sc[c], sc[2 + c]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
      const float m_new = fmaxf(m_run[c], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      alpha[c] = fast_exp2(m_run[c] - m_use);
      sc[c] = fast_exp2(sc[c] - m_use);
      sc[2 + c] = fast_exp2(sc[2 + c] - m_use);
      l_run[c] = l_run[c] * alpha[c] + sc[c] + sc[2 + c];  // this lane's keys only; summed over g at the end
      m_run[c] = m_new;
    }
#pragma unroll
    for (int mt = 0; mt < kK; ++mt) {
      o[mt][0] *= alpha[0];
      o[mt][1] *= alpha[1];
      o[mt][2] *= alpha[0];
      o[mt][3] *= alpha[1];
    }
    // P^T as the B operand (keys x heads): the transposes of the two 8x8 probability blocks.
    const uint32_t b0 = movmatrix_trans(pack_bf16(sc[0], sc[1]));
    const uint32_t b1 = movmatrix_trans(pack_bf16(sc[2], sc[3]));
#pragma unroll
    for (int mt = 0; mt < kK; ++mt) {
      uint32_t af[4];
      ldmatrix_x4_trans(af, &st.v[vrow][((2 * mt + vchunk) ^ swz) * 8]);
      mma_bf16(o[mt], af, b0, b1);
    }
    __syncwarp();
    stage = stage + 1 == kStages ? 0 : stage + 1;
  }
  cp_async_wait<0>();
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    l_run[c] += __shfl_xor_sync(0xffffffffu, l_run[c], 4);
    l_run[c] += __shfl_xor_sync(0xffffffffu, l_run[c], 8);
    l_run[c] += __shfl_xor_sync(0xffffffffu, l_run[c], 16);
  }

  // Merge the 4 warps through the (now idle) stage memory: O^T fragments to [warp][head][dim].
  __syncthreads();
  float* red_o = reinterpret_cast<float*>(smem_raw);
  float* red_m = red_o + kWarps * G * D;
  float* red_l = red_m + kWarps * G;
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const int h = 2 * t4 + c;
    if (h >= G) continue;
#pragma unroll
    for (int mt = 0; mt < kK; ++mt) {
      red_o[(warp * G + h) * D + mt * 16 + g] = o[mt][c];
      red_o[(warp * G + h) * D + mt * 16 + g + 8] = o[mt][2 + c];
    }
    if (g == 0) {
      red_m[warp * G + h] = m_run[c];
      red_l[warp * G + h] = l_run[c];
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += kThreads) {
    const int h = e / D, d = e % D;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, red_m[w * G + h]);
    const float m_use = m == -INFINITY ? 0.0f : m;
    float l = 0.0f, acc = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float wt = fast_exp2(red_m[w * G + h] - m_use);
      l += wt * red_l[w * G + h];
      acc += wt * red_o[(w * G + h) * D + d];
    }
    store_result(p, seq, split, r.used, static_cast<int64_t>(kvh) * G + h, d, D, acc, m, l);
  }
}

// ---- CUDA-core kernel (the previous version, kept for comparison) ----

constexpr int kSimtTile = 32;  // keys per pipeline stage
constexpr int kSimtStages = 3;

template <int D, int G>
struct SimtSmem {
  bf16 k[kSimtStages][kSimtTile][D];
  bf16 v[kSimtStages][kSimtTile][D];
  float p[G][kSimtTile];  // scores, then probabilities
  float alpha[G];
  float m[G], l[G];
};

// Block (split, kv head, sequence); lanes run across head dims (8 per lane), scores go through shared memory,
// where one warp per head does the online softmax.
template <int D, int G>
__global__ void __launch_bounds__(kThreads) decode_simt_kernel(DecodeParams p) {
  constexpr int kLanes = D / 8;              // lanes per key row
  constexpr int kKeysPerStep = 32 / kLanes;  // keys a warp covers at once
  constexpr int kSteps = kSimtTile / kWarps / kKeysPerStep;
  constexpr int kHeadsPerWarp = (G + kWarps - 1) / kWarps;
  constexpr int kChunksPerTile = kSimtTile * kLanes;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<SimtSmem<D, G>*>(smem_raw);
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

  const int64_t n_keys = range.key_end - range.key_begin;
  const int n_tiles = static_cast<int>((n_keys + kSimtTile - 1) / kSimtTile);
  auto load_tile = [&](int t) {
    const int stage = t % kSimtStages;
    const int64_t base = range.key_begin + static_cast<int64_t>(t) * kSimtTile;
#pragma unroll
    for (int i = 0; i < kChunksPerTile / kThreads; ++i) {
      const int ci = threadIdx.x + i * kThreads;
      const int kl = ci / kLanes, c = ci % kLanes;
      const int64_t key = base + kl;
      const bool valid = key < range.key_end;
      const int64_t off = valid ? cache_offset(a, table, key, kvh) + c * 8 : 0;
      cp_async16(&sm.k[stage][kl][c * 8], kc + off, valid);
      cp_async16(&sm.v[stage][kl][c * 8], vc + off, valid);
    }
  };
#pragma unroll
  for (int s = 0; s < kSimtStages - 1; ++s) {
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
    if (t + kSimtStages - 1 < n_tiles) load_tile(t + kSimtStages - 1);
    cp_async_commit();
    cp_async_wait<kSimtStages - 1>();
    __syncthreads();
    const int stage = t % kSimtStages;
    const int64_t tile_base = range.key_begin + static_cast<int64_t>(t) * kSimtTile;
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int kl = warp * (kSimtTile / kWarps) + s * kKeysPerStep + ks;
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
        const bool valid = tile_base + kl < range.key_end;
#pragma unroll
        for (int g = 0; g < G; ++g) sm.p[g][kl] = valid ? dot[g] : -INFINITY;
      }
    }
    __syncthreads();
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
      const int kl = warp * (kSimtTile / kWarps) + s * kKeysPerStep + ks;
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

#pragma unroll
  for (int g = 0; g < G; ++g)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int o = kLanes; o < 32; o <<= 1) acc[g][j] += __shfl_xor_sync(0xffffffffu, acc[g][j], o);
  float* red = reinterpret_cast<float*>(&sm.k[0][0][0]);  // [kWarps][G][D] floats fit in the K stages
  static_assert(sizeof(float) * kWarps * G * D <= sizeof(bf16) * kSimtStages * kSimtTile * D * 2, "reduction");
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
    store_result(p, seq, split, range.used, static_cast<int64_t>(kvh) * G + g, d, D, o, sm.m[g], sm.l[g]);
  }
}

// ---- Combine, splits, launch ----

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
  const float m_use = m == -INFINITY ? 0.0f : m;
  float l = 0.0f, o = 0.0f;
  for (int s = 0; s < first.used; ++s) {
    const float w = fast_exp2(p.partial_ml[(row0 + s) * 2] - m_use);
    l += w * p.partial_ml[(row0 + s) * 2 + 1];
    o += w * p.partial_o[(row0 + s) * D + d];
  }
  const int32_t tok = p.a.query_start[seq];
  static_cast<bf16*>(p.a.out)[tok * p.a.out_ld + h * D + d] = __float2bfloat16_rn(l > 0.0f ? o / l : 0.0f);
}

template <int D, int G>
size_t decode_smem(DecodeKernel k) {
  return k == DecodeKernel::kSimt ? sizeof(SimtSmem<D, G>) : mma_smem_bytes<D, G>();
}
template <int D, int G>
auto decode_kernel_fn(DecodeKernel k) {
  return k == DecodeKernel::kSimt ? decode_simt_kernel<D, G> : decode_mma_kernel<D, G>;
}

// Raises the kernel's dynamic shared-memory limit once; returns its resident blocks per SM (0 on error).
template <int D, int G>
int prepare_kernel(DecodeKernel k) {
  static int blocks[2] = {-1, -1};
  int& b = blocks[k == DecodeKernel::kSimt ? 1 : 0];
  if (b < 0) {
    const int smem = static_cast<int>(decode_smem<D, G>(k));
    int n = 0;
    if (cudaFuncSetAttribute(decode_kernel_fn<D, G>(k), cudaFuncAttributeMaxDynamicSharedMemorySize, smem) !=
            cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_kernel_fn<D, G>(k), kThreads, smem) != cudaSuccess)
      n = 0;
    b = n;
  }
  return b;
}

// Splits per sequence: as many as fill one wave of resident blocks, never a second, partial wave of splits
// (whole waves of blocks are what finish together), and at least 64 keys each.
int decode_splits(const AttentionArgs& a, int num_sms) {
  int per_sm = 4;  // the CUDA-core kernel's 48 KB blocks
  if (a.decode_kernel == DecodeKernel::kTensorCore) {
    dispatch_head_dim(a.head_dim, [&](auto d) {
      dispatch_group(a.num_heads / a.num_kv_heads,
                     [&](auto g) { per_sm = prepare_kernel<d.value, g.value>(DecodeKernel::kTensorCore); });
    });
    if (per_sm < 1) per_sm = 1;
  }
  const int64_t blocks = static_cast<int64_t>(a.num_seqs) * a.num_kv_heads;
  int64_t splits = per_sm * static_cast<int64_t>(num_sms) / blocks;
  const int64_t by_context = (a.max_context_len + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  if (splits > by_context) splits = by_context;
  if (splits > kMaxSplits) splits = kMaxSplits;
  return static_cast<int>(splits < 1 ? 1 : splits);
}

template <int D, int G>
cudaError_t launch_typed(const DecodeParams& p, Stream stream) {
  const DecodeKernel k = p.a.decode_kernel;
  if (prepare_kernel<D, G>(k) <= 0) return cudaErrorInvalidConfiguration;
  const dim3 grid(p.num_splits, static_cast<unsigned>(p.a.num_kv_heads), static_cast<unsigned>(p.a.num_seqs));
  cudaError_t e = launch(decode_kernel_fn<D, G>(k), grid, dim3(kThreads), decode_smem<D, G>(k), stream, p);
  if (e != cudaSuccess || p.num_splits == 1) return e;
  const dim3 cgrid(static_cast<unsigned>(p.a.num_heads), static_cast<unsigned>(p.a.num_seqs));
  return launch(decode_combine_kernel<D>, cgrid, dim3(D), 0, stream, p);
}

}  // namespace

bool attention_decode_supported(const AttentionArgs& a) {
  return a.max_query_len == 1 && a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0 &&
         head_dim_instantiated(a.head_dim) && group_instantiated(a.num_heads / a.num_kv_heads) &&
         a.q_ld % 8 == 0 && aligned16(a.q) && aligned16(a.k_cache) && aligned16(a.v_cache) &&
         a.max_context_len < (1 << 30) && a.num_seqs <= 65535 && a.num_kv_heads <= 65535;
}

int64_t attention_decode_scratch_floats(const AttentionArgs& a, int num_sms) {
  const int splits = decode_splits(a, num_sms);
  if (splits == 1) return 0;
  return static_cast<int64_t>(a.num_seqs) * a.num_heads * splits * (a.head_dim + 2);
}

cudaError_t launch_attention_decode(const AttentionArgs& a, float* scratch, int num_sms, Stream stream) {
  if (a.num_seqs == 0) return cudaSuccess;
  if (!attention_decode_supported(a) || a.num_tokens != a.num_seqs) return cudaErrorInvalidValue;
  DecodeParams p;
  p.a = with_block_shift(a);
  p.num_splits = decode_splits(a, num_sms);
  p.paged16 = a.block_size % kTileKeys == 0;
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
