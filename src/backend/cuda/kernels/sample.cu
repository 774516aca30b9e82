// sample.cu: argmax and sampling, one 1024-thread block per logits row, re-reading the row from L2 for each
// pass. Sampling follows backend/sampling_math.h to the bit: temperature, the top-k and top-p thresholds by an
// MSB-first radix select over order-preserving float keys (counts, or fixed-point masses, summed with integer
// atomics so the result does not depend on thread order), min-p, typical-p (the kept set's fixed-point entropy
// offset summed in int64, then a radix select over the 64-bit typical keys by mass), then the inverse-CDF draw
// in vocabulary order through a block-wide exclusive scan of fixed-point weights.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/sample.h"
#include "backend/sampling_math.h"

namespace ls::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// First index of the maximum (NaN never wins).
__device__ int32_t block_argmax(const float* row, int64_t n, float* sv, int32_t* si) {
  float best = -INFINITY;
  int32_t idx = -1;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = row[i];
    if (v > best || (idx < 0 && v == best)) {
      best = v;
      idx = static_cast<int32_t>(i);
    }
  }
  // Ties resolve to the lower index; -1 (no candidate) loses to everything.
  auto better = [](float v, int32_t i, float bv, int32_t bi) {
    if (i < 0) return false;
    if (bi < 0) return true;
    return v > bv || (v == bv && i < bi);
  };
  auto warp_reduce = [&] {  // every lane of the warp ends with the warp's best (best, idx)
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, best, o);
      const int32_t i = __shfl_xor_sync(0xffffffffu, idx, o);
      if (better(v, i, best, idx)) {
        best = v;
        idx = i;
      }
    }
  };
  warp_reduce();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) {
    sv[warp] = best;
    si[warp] = idx;
  }
  __syncthreads();
  if (warp == 0) {
    best = sv[lane];
    idx = si[lane];
    warp_reduce();
    if (lane == 0) si[0] = idx < 0 ? 0 : idx;
  }
  __syncthreads();
  const int32_t r = si[0];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* logits, int64_t ld, int64_t cols,
                                                         int32_t* tokens) {
  __shared__ float sv[kWarps];
  __shared__ int32_t si[kWarps];
  pdl_wait();
  pdl_launch_dependents();
  const int32_t t = block_argmax(logits + blockIdx.x * ld, cols, sv, si);
  if (threadIdx.x == 0) tokens[blockIdx.x] = t;
}

struct RowState {
  const float* row;
  int64_t n;
  float temperature, m, min_p;
  uint32_t k_key, p_key;  // keep keys >= these (0: no filter)
  uint64_t t_key;         // typical-p: keep typical keys >= this (0: no filter)
  int64_t s_q, v;         // typical-p: the kept set's sums of weight * q and of weight (typical_key's inputs)
};

__device__ __forceinline__ float scaled(const RowState& s, int64_t i) { return s.row[i] / s.temperature; }

__device__ __forceinline__ uint64_t typical_key_of(const RowState& s, float v) {
  return typical_key(typical_q(v - s.m), s.s_q, s.v);
}

// Whether element i survives the filters decided so far, and its fixed-point weight (min-p when asked; the
// typical filter once its threshold is set).
__device__ __forceinline__ uint64_t kept_weight(const RowState& s, int64_t i, bool with_min_p) {
  const float v = scaled(s, i);
  const uint32_t key = float_order_key(v);
  if (key < s.k_key || key < s.p_key) return 0;
  const float e = sample_exp(v - s.m);
  if (with_min_p && !(e >= s.min_p)) return 0;
  if (s.t_key != 0 && typical_key_of(s, v) < s.t_key) return 0;
  return sample_weight(e);
}

struct RadixShared {
  uint64_t hist[256];
  uint64_t prefix, remaining;
};

// The largest key K (of kBits bits) with sum(weight_of(i) : key_of(i) >= K) >= target, over the elements with
// non-zero weight, by an MSB-first radix select of 8 bits per pass.
template <int kBits, typename KeyOf, typename WeightOf>
__device__ uint64_t radix_select(int64_t n, KeyOf key_of, WeightOf weight_of, uint64_t target, RadixShared& sh) {
  uint64_t prefix = 0, mask = 0, remaining = target;
  for (int shift = kBits - 8; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += kThreads) sh.hist[b] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += kThreads) {
      const uint64_t w = weight_of(i);
      if (!w) continue;
      const uint64_t key = key_of(i);
      if ((key & mask) != prefix) continue;
      atomicAdd(reinterpret_cast<unsigned long long*>(&sh.hist[(key >> shift) & 255]), w);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t sum = 0;
      int b = 255;
      for (; b > 0; --b) {
        if (sum + sh.hist[b] >= remaining) break;
        sum += sh.hist[b];
      }
      sh.prefix = prefix | (static_cast<uint64_t>(b) << shift);
      sh.remaining = remaining - sum;
    }
    __syncthreads();
    prefix = sh.prefix;
    remaining = sh.remaining;
    mask |= 255ull << shift;
    __syncthreads();
  }
  return prefix;
}

__device__ int64_t block_sum_i64(int64_t v, uint64_t* scratch) {
  return static_cast<int64_t>(block_sum(static_cast<uint64_t>(v), scratch));  // two's complement sums
}

// The typical-p threshold of a row whose other filters are set (sampling_math.h: D = S / V, keys by distance).
__device__ uint64_t typical_threshold(RowState& s, float typical_p, uint64_t* scan, RadixShared& sh) {
  uint64_t total = 0;
  int64_t s_q = 0, v = 0;
  for (int64_t i = threadIdx.x; i < s.n; i += kThreads) {
    const uint64_t w = kept_weight(s, i, true);
    if (!w) continue;
    total += w;
    s_q += typical_weight(w) * typical_q(scaled(s, i) - s.m);
    v += typical_weight(w);
  }
  total = block_sum(total, scan);
  s.s_q = block_sum_i64(s_q, scan);
  s.v = block_sum_i64(v, scan);
  return radix_select<64>(
      s.n, [&](int64_t i) { return typical_key_of(s, scaled(s, i)); }, [&](int64_t i) { return kept_weight(s, i, true); },
      top_p_target(typical_p, total), sh);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, int64_t ld, int64_t cols,
                                                         const SamplingParams* params, int32_t* tokens) {
  __shared__ float sv[kWarps];
  __shared__ int32_t si[kWarps];
  __shared__ RadixShared radix;
  __shared__ uint64_t scan[kWarps];
  pdl_wait();
  pdl_launch_dependents();
  const SamplingParams p = params[blockIdx.x];
  const float* row = logits + blockIdx.x * ld;
  if (!(p.temperature > 0.0f)) {
    const int32_t t = block_argmax(row, cols, sv, si);
    if (threadIdx.x == 0) tokens[blockIdx.x] = t;
    return;
  }
  RowState s{row, cols, p.temperature, 0.0f, p.min_p, 0u, 0u, 0u, 0, 0};
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) mx = fmaxf(mx, scaled(s, i));
  mx = warp_max(mx);
  if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = warp_max(sv[threadIdx.x & 31]);
  __syncthreads();
  s.m = mx;
  auto float_key = [&](int64_t i) { return static_cast<uint64_t>(float_order_key(scaled(s, i))); };
  if (p.top_k > 0 && p.top_k < cols)
    s.k_key = static_cast<uint32_t>(
        radix_select<32>(cols, float_key, [](int64_t) { return uint64_t{1}; }, static_cast<uint64_t>(p.top_k), radix));
  if (p.top_p < 1.0f) {
    uint64_t total = 0;
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) total += kept_weight(s, i, false);
    total = block_sum(total, scan);
    s.p_key = static_cast<uint32_t>(radix_select<32>(
        cols, float_key, [&](int64_t i) { return kept_weight(s, i, false); }, top_p_target(p.top_p, total), radix));
  }
  const bool min_p = p.min_p > 0.0f;
  if (p.typical_p < 1.0f) {
    s.t_key = typical_threshold(s, p.typical_p, scan, radix);
    // A threshold of 0 keeps every key, as no filter does: the draw below reads t_key either way.
  }
  // Each thread owns a contiguous chunk, so the scan below follows vocabulary order.
  const int64_t chunk = (cols + kThreads - 1) / kThreads;
  const int64_t begin = threadIdx.x * chunk, end = begin + chunk < cols ? begin + chunk : cols;
  uint64_t mine = 0;
  for (int64_t i = begin; i < end; ++i) mine += kept_weight(s, i, min_p);
  // Exclusive scan of the chunk sums across the block.
  uint64_t incl = mine;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  __syncthreads();
  if (lane == 31) scan[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    uint64_t v = scan[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const uint64_t u = __shfl_up_sync(0xffffffffu, v, o);
      if (lane >= o) v += u;
    }
    scan[lane] = v;  // inclusive over warps
  }
  __syncthreads();
  const uint64_t total = scan[kWarps - 1];
  const uint64_t excl = incl - mine + (warp > 0 ? scan[warp - 1] : 0);
  if (total == 0) {  // min_p > 1 keeps nothing: greedy
    const int32_t t = block_argmax(row, cols, sv, si);
    if (threadIdx.x == 0) tokens[blockIdx.x] = t;
    return;
  }
  const uint64_t target = sample_target(sample_uniform24(p.seed, p.step), total);
  if (target >= excl && target < excl + mine) {
    uint64_t sum = excl;
    for (int64_t i = begin; i < end; ++i) {
      sum += kept_weight(s, i, min_p);
      if (sum > target) {
        tokens[blockIdx.x] = static_cast<int32_t>(i);
        break;
      }
    }
  }
}

}  // namespace

cudaError_t launch_argmax(const float* logits, int64_t ld, int64_t rows, int64_t cols, int32_t* tokens,
                          Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!logits || !tokens || cols <= 0 || ld < cols) return cudaErrorInvalidValue;
  return launch(argmax_kernel, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream, logits, ld, cols, tokens);
}

cudaError_t launch_sample(const float* logits, int64_t ld, int64_t rows, int64_t cols, const SamplingParams* params,
                          int32_t* tokens, Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!logits || !tokens || !params || cols <= 0 || ld < cols) return cudaErrorInvalidValue;
  return launch(sample_kernel, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream, logits, ld, cols, params,
                tokens);
}

}  // namespace ls::cuda
