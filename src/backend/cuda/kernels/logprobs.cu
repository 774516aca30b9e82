// logprobs.cu: one 512-thread block per logits row. The maximum, then the sum of exp(x - max) in double (as the
// CPU twin sums, so the two agree to float rounding), then the top n: each thread keeps its best 20 of the
// elements it visits in a sorted register list (insertion by predicated moves, compile-time indices only); each
// warp merges its 32 lists by 20 rounds of a warp arg-best in which the winning lane pops its head; warp 0
// merges the 16 warp lists the same way. The order is (value descending, id ascending), the CPU's.
#include <climits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/logprobs.h"

namespace ls::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kTop = kLogprobsMaxTop;

__device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi) {
  return v > bv || (v == bv && i < bi);
}

// A sorted list of the best kTop (value, id) pairs; empty entries are (-inf, INT_MAX), which lose every tie.
struct TopList {
  float v[kTop];
  int32_t id[kTop];
  __device__ void clear() {
#pragma unroll
    for (int j = 0; j < kTop; ++j) {
      v[j] = -INFINITY;
      id[j] = INT_MAX;
    }
  }
  __device__ void insert(float x, int32_t i) {
    if (!better(x, i, v[kTop - 1], id[kTop - 1])) return;
#pragma unroll
    for (int j = kTop - 1; j > 0; --j) {
      const bool shift = better(x, i, v[j - 1], id[j - 1]);
      const bool here = !shift && better(x, i, v[j], id[j]);
      v[j] = shift ? v[j - 1] : (here ? x : v[j]);
      id[j] = shift ? id[j - 1] : (here ? i : id[j]);
    }
    if (better(x, i, v[0], id[0])) {
      v[0] = x;
      id[0] = i;
    }
  }
  __device__ void pop() {
#pragma unroll
    for (int j = 0; j + 1 < kTop; ++j) {
      v[j] = v[j + 1];
      id[j] = id[j + 1];
    }
    v[kTop - 1] = -INFINITY;
    id[kTop - 1] = INT_MAX;
  }
};

// n rounds over the warp's lists: round j's winner (the best head) goes to out_v[j] / out_id[j] (lane 0 writes).
__device__ void warp_merge(TopList& l, int n, float* out_v, int32_t* out_id) {
  const int lane = threadIdx.x & 31;
  for (int j = 0; j < n; ++j) {
    float bv = l.v[0];
    int32_t bi = l.id[0];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, bv, o);
      const int32_t i = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v, i, bv, bi)) {
        bv = v;
        bi = i;
      }
    }
    if (l.id[0] == bi && l.v[0] == bv && bi != INT_MAX) l.pop();  // ids are unique: one lane pops
    if (lane == 0) {
      out_v[j] = bv;
      out_id[j] = bi;
    }
  }
}

__global__ void __launch_bounds__(kThreads) logprobs_kernel(const float* logits, int64_t ld, int64_t cols,
                                                           const int32_t* targets, int32_t top_n, float* logprob,
                                                           int32_t* top_ids, float* top_logprobs) {
  __shared__ double scratch[kWarps];
  __shared__ float list_v[kWarps][kTop];
  __shared__ int32_t list_id[kWarps][kTop];
  pdl_wait();
  pdl_launch_dependents();
  const float* row = logits + blockIdx.x * ld;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) m = fmaxf(m, row[i]);
  m = warp_max(m);
  if ((threadIdx.x & 31) == 0) list_v[threadIdx.x >> 5][0] = m;
  __syncthreads();
  m = warp_max((threadIdx.x & 31) < kWarps ? list_v[threadIdx.x & 31][0] : -INFINITY);
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) sum += exp(static_cast<double>(row[i]) - m);
  sum = block_sum(sum, scratch);
  const double lse = m + log(sum);
  if (threadIdx.x == 0) {
    const int32_t t = targets[blockIdx.x];
    logprob[blockIdx.x] = t >= 0 && t < cols ? static_cast<float>(row[t] - lse) : -INFINITY;
  }
  if (top_n <= 0) return;
  TopList l;
  l.clear();
  for (int64_t i = threadIdx.x; i < cols; i += kThreads) l.insert(row[i], static_cast<int32_t>(i));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // list_v held the warp maxima
  warp_merge(l, top_n, list_v[warp], list_id[warp]);
  __syncthreads();
  if (warp != 0) return;
  l.clear();
  if (lane < kWarps) {
#pragma unroll
    for (int j = 0; j < kTop; ++j) {
      if (j < top_n) {
        l.v[j] = list_v[lane][j];
        l.id[j] = list_id[lane][j];
      }
    }
  }
  __syncwarp();
  float* out_v = list_v[0];  // warp 0's own list is in registers now
  int32_t* out_id = list_id[0];
  warp_merge(l, top_n, out_v, out_id);
  __syncwarp();
  for (int j = lane; j < top_n; j += 32) {
    const bool real = out_id[j] != INT_MAX;
    top_ids[blockIdx.x * top_n + j] = real ? out_id[j] : -1;
    top_logprobs[blockIdx.x * top_n + j] = real ? static_cast<float>(out_v[j] - lse) : -INFINITY;
  }
}

}  // namespace

cudaError_t launch_logprobs(const float* logits, int64_t ld, int64_t rows, int64_t cols, const int32_t* targets,
                            int32_t top_n, float* logprob, int32_t* top_ids, float* top_logprobs, Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!logits || !targets || !logprob || cols <= 0 || ld < cols || top_n < 0 || top_n > kTop ||
      (top_n > 0 && (!top_ids || !top_logprobs)))
    return cudaErrorInvalidValue;
  return launch(logprobs_kernel, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, stream, logits, ld, cols,
                targets, top_n, logprob, top_ids, top_logprobs);
}

}  // namespace ls::cuda
