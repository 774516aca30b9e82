// lora_stream_probe.cu: how fast the LoRA expand's reads of B can go at a decode step of 128 tokens with 128
// distinct rank-16 adapters, with nothing of the expand but the reads: the same grid (512 blocks of 256 threads,
// at most 4 per SM), the same runs of B (q/k/v of a Llama-3-8B layer: per token two 2048-column runs of q's B and
// one run each of k's and v's, 64 and 32 KB, in one arena per module as LoraSlots lays them out), L2 flushed
// before every launch as in a step. Two readers: 16-byte loads straight into registers (8 in flight per thread),
// and the expand's bulk path (16 KB bulk copies into shared memory, two in flight per block). If both reach near
// the copy rate, what slows the expand (bench/cuda_engine_notes.md, runs 81-84) is its own structure; if they
// crawl as it does, it is the access pattern.
// Run: lora_stream_probe (prints each reader's median time, GB/s and share of the device-to-device copy rate).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/common.cuh"

namespace {

constexpr int kThreads = 256, kTokens = 128, kAdapters = 128, kRank = 16, kBlocks = kTokens * 4;
constexpr int64_t kQ = 4096, kKv = 1024, kRun = 2048;
constexpr int kStageBytes = 16384, kStages = 2;

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e = (x);                                                                  \
    if (e != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e));     \
      std::exit(1);                                                                       \
    }                                                                                     \
  } while (0)

struct Arenas {
  const unsigned char* q;
  const unsigned char* k;
  const unsigned char* v;
};

// Block b's run: token b / 4 (adapter = token), part b % 4: q's first or second run, k, v.
__device__ __forceinline__ void run_of(const Arenas& a, int b, const unsigned char** src, int* bytes) {
  const int token = b / 4, part = b % 4;
  const int64_t q_bytes = kQ * kRank * 2, kv_bytes = kKv * kRank * 2, run_bytes = kRun * kRank * 2;
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

__global__ void __launch_bounds__(kThreads, 4) direct_reader(Arenas a, float* out) {
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

__global__ void __launch_bounds__(kThreads, 4) bulk_reader(Arenas a, float* out) {
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

template <typename Launch>
double median_us(Launch launch, void* flush, size_t flush_bytes) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<double> us;
  for (int i = 0; i < 25; ++i) {
    CHECK(cudaMemsetAsync(flush, i, flush_bytes));  // evicts B from L2, as a step's weights do
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i >= 5) us.push_back(ms * 1e3);
  }
  std::sort(us.begin(), us.end());
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  return us[us.size() / 2];
}

}  // namespace

int main() {
  const size_t q_bytes = kAdapters * kQ * kRank * 2, kv_bytes = kAdapters * kKv * kRank * 2;
  unsigned char *q, *k, *v, *copy_dst;
  float* out;
  void* flush;
  const size_t flush_bytes = size_t{256} << 20, copy_bytes = size_t{1} << 30;
  CHECK(cudaMalloc(&q, q_bytes));
  CHECK(cudaMalloc(&k, kv_bytes));
  CHECK(cudaMalloc(&v, kv_bytes));
  CHECK(cudaMalloc(&out, kBlocks * sizeof(float)));
  CHECK(cudaMalloc(&flush, flush_bytes));
  CHECK(cudaMalloc(&copy_dst, 2 * copy_bytes));
  for (unsigned char* p : {q, k, v}) CHECK(cudaMemset(p, 0x3c, p == q ? q_bytes : kv_bytes));  // bf16 ~0.01
  const Arenas a{q, k, v};
  const double bytes = static_cast<double>(kTokens) * (2 * kRun + 2 * kKv) * kRank * 2;
  // The copy rate (read + write of 1 GiB), as engine_bench measures it.
  const double copy_us = median_us([&] { CHECK(cudaMemcpyAsync(copy_dst, copy_dst + copy_bytes, copy_bytes,
                                                               cudaMemcpyDeviceToDevice)); },
                                   flush, flush_bytes);
  const double rate = 2.0 * static_cast<double>(copy_bytes) / (copy_us * 1e-6);
  std::printf("copy rate %.0f GB/s; B of one q/k/v expand at 128 distinct: %.1f MB, floor %.2f us\n", rate / 1e9,
              bytes / 1e6, bytes / rate * 1e6);
  const double direct = median_us([&] { direct_reader<<<kBlocks, kThreads>>>(a, out); }, flush, flush_bytes);
  const double bulk = median_us([&] { bulk_reader<<<kBlocks, kThreads>>>(a, out); }, flush, flush_bytes);
  CHECK(cudaGetLastError());
  for (auto [name, us] : {std::pair{"direct 16-byte loads", direct}, {"bulk copies, 2 x 16 KB", bulk}})
    std::printf("  %-24s %7.2f us %7.0f GB/s %5.1f%% of the copy rate\n", name, us, bytes / (us * 1e-6) / 1e9,
                100.0 * bytes / (us * 1e-6) / rate);
  return 0;
}
