// sample.cu: argmax and sampling, one 1024-thread block per logits row, re-reading the row from L2 for each
// pass. Sampling follows backend/sampling_math.h to the bit: temperature, the top-k and top-p thresholds by an
// MSB-first radix select over order-preserving float keys (counts, or fixed-point masses, summed with integer
// atomics so the result does not depend on thread order), min-p, then the inverse-CDF draw in vocabulary
// order through a block-wide exclusive scan of fixed-point weights.
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
};

__device__ __forceinline__ float scaled(const RowState& s, int64_t i) { return s.row[i] / s.temperature; }

// Whether element i survives the filters decided so far, and its fixed-point weight.
__device__ __forceinline__ uint64_t kept_weight(const RowState& s, int64_t i, bool with_min_p) {
  const float v = scaled(s, i);
  const uint32_t key = float_order_key(v);
  if (key < s.k_key || key < s.p_key) return 0;
  const float e = sample_exp(v - s.m);
  if (with_min_p && !(e >= s.min_p)) return 0;
  return sample_weight(e);
}

__device__ uint64_t block_sum_u64(uint64_t v, uint64_t* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < kWarps ? scratch[lane] : 0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The largest key K with sum(weight(i) : key(i) >= K) >= target, over the elements with non-zero weight
// (count mode: weight 1 for every element).
__device__ uint32_t radix_threshold(const RowState& s, bool count_mode, uint64_t target, uint64_t* hist,
                                    uint32_t* shared_prefix, uint64_t* shared_remaining) {
  uint32_t prefix = 0, mask = 0;
  uint64_t remaining = target;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += kThreads) hist[b] = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < s.n; i += kThreads) {
      const uint32_t key = float_order_key(scaled(s, i));
      if ((key & mask) != prefix) continue;
      const uint64_t w = count_mode ? 1 : kept_weight(s, i, false);
      if (w) atomicAdd(reinterpret_cast<unsigned long long*>(&hist[(key >> shift) & 255]), w);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t sum = 0;
      int b = 255;
      for (; b > 0; --b) {
        if (sum + hist[b] >= remaining) break;
        sum += hist[b];
      }
      *shared_prefix = prefix | (static_cast<uint32_t>(b) << shift);
      *shared_remaining = remaining - sum;
    }
    __syncthreads();
    prefix = *shared_prefix;
    remaining = *shared_remaining;
    mask |= 255u << shift;
    __syncthreads();
  }
  return prefix;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, int64_t ld, int64_t cols,
                                                         const SamplingParams* params, int32_t* tokens) {
  __shared__ float sv[kWarps];
  __shared__ int32_t si[kWarps];
  __shared__ uint64_t hist[256];
  __shared__ uint64_t scan[kWarps];
  __shared__ uint32_t shared_prefix;
  __shared__ uint64_t shared_remaining;
  pdl_wait();
  pdl_launch_dependents();
  const SamplingParams p = params[blockIdx.x];
  const float* row = logits + blockIdx.x * ld;
  if (!(p.temperature > 0.0f)) {
    const int32_t t = block_argmax(row, cols, sv, si);
    if (threadIdx.x == 0) tokens[blockIdx.x] = t;
    return;
  }
  RowState s{row, cols, p.temperature, 0.0f, p.min_p, 0u, 0u};
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) mx = fmaxf(mx, scaled(s, i));
  mx = warp_max(mx);
  if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = warp_max(sv[threadIdx.x & 31]);
  __syncthreads();
  s.m = mx;
  if (p.top_k > 0 && p.top_k < cols)
    s.k_key = radix_threshold(s, true, static_cast<uint64_t>(p.top_k), hist, &shared_prefix, &shared_remaining);
  if (p.top_p < 1.0f) {
    uint64_t total = 0;
    for (int64_t i = threadIdx.x; i < cols; i += kThreads) total += kept_weight(s, i, false);
    total = block_sum_u64(total, scan);
    s.p_key = radix_threshold(s, false, top_p_target(p.top_p, total), hist, &shared_prefix, &shared_remaining);
  }
  const bool min_p = p.min_p > 0.0f;
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
