// lora_stream_probe_kernels.cu: the two readers of lora_stream_probe (lora_stream_probe.h says what they read).
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/common.cuh"
#include "lora_stream_probe.h"

namespace ls::bench {
namespace {

constexpr int kThreads = 256;
constexpr int kStageBytes = 16384, kStages = 2;

// Block b's run: token b / 4 (adapter = token), part b % 4: q's first or second run, k, v.
__device__ __forceinline__ void run_of(const StreamArenas& a, int b, const unsigned char** src, int* bytes) {
  const int token = b / 4, part = b % 4;
  const int64_t q_bytes = kProbeQ * kProbeRank * 2, kv_bytes = kProbeKv * kProbeRank * 2,
                run_bytes = kProbeRun * kProbeRank * 2;
  if (part < 2) {
    *src = a.q + token * q_bytes + part * run_bytes;
    *bytes = static_cast<int>(run_bytes);
  } else {
    *src = (part == 2 ? a.k : a.v) + token * kv_bytes;
    *bytes = static_cast<int>(kv_bytes);
  }
}

__device__ __forceinline__ float sum16(const uint4& w) {
  float v[8];
  ls::cuda::unpack8(w, v);
  float s = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s += v[i];
  return s;
}

__global__ void __launch_bounds__(kThreads, 4) direct_reader(StreamArenas a, float* out) {
  const unsigned char* src;
  int bytes;
  run_of(a, static_cast<int>(blockIdx.x), &src, &bytes);
  const uint4* w = reinterpret_cast<const uint4*>(src);
  const int words = bytes / 16;
  float s = 0.0f;
  for (int base = 0; base < words; base += kThreads * 8) {
    uint4 v[8];
#pragma unroll
    for (int g = 0; g < 8; ++g) {
      const int i = base + static_cast<int>(threadIdx.x) + g * kThreads;
      v[g] = i < words ? ls::cuda::load_stream16(w + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int g = 0; g < 8; ++g) s += sum16(v[g]);
  }
  if (s == 12345.678f) out[blockIdx.x] = s;  // keeps the loads; never true for the data
}

__global__ void __launch_bounds__(kThreads, 4) bulk_reader(StreamArenas a, float* out) {
  __shared__ __align__(128) unsigned char stage[kStages][kStageBytes];
  __shared__ __align__(8) uint64_t full[kStages];
  const unsigned char* src;
  int bytes;
  run_of(a, static_cast<int>(blockIdx.x), &src, &bytes);
  const int stages = (bytes + kStageBytes - 1) / kStageBytes;
  auto issue = [&](int j) {
    const int n = min(kStageBytes, bytes - j * kStageBytes);
    ls::cuda::mbar_arrive_expect_tx(&full[j % kStages], static_cast<uint32_t>(n));
    ls::cuda::bulk_copy(stage[j % kStages], src + static_cast<int64_t>(j) * kStageBytes, static_cast<uint32_t>(n),
                        &full[j % kStages]);
  };
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) ls::cuda::mbar_init(&full[s], 1);
    ls::cuda::mbar_init_fence();
    for (int j = 0; j < stages && j < kStages; ++j) issue(j);
  }
  __syncthreads();
  float s = 0.0f;
  for (int j = 0; j < stages; ++j) {
    ls::cuda::mbar_wait(&full[j % kStages], (j / kStages) & 1);
    const uint4* w = reinterpret_cast<const uint4*>(stage[j % kStages]);
    const int words = min(kStageBytes, bytes - j * kStageBytes) / 16;
    for (int i = static_cast<int>(threadIdx.x); i < words; i += kThreads) s += sum16(w[i]);
    __syncthreads();
    if (threadIdx.x == 0 && j + kStages < stages) issue(j + kStages);
  }
  if (s == 12345.678f) out[blockIdx.x] = s;
}

}  // namespace

cudaError_t launch_stream_reader(const StreamArenas& a, bool bulk, float* sink, cudaStream_t stream) {
  if (bulk) {
    bulk_reader<<<kProbeBlocks, kThreads, 0, stream>>>(a, sink);
  } else {
    direct_reader<<<kProbeBlocks, kThreads, 0, stream>>>(a, sink);
  }
  return cudaGetLastError();
}

}  // namespace ls::bench
