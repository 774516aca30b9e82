// lora_stream_probe.cpp: how fast the LoRA expand's reads of B can go at a decode step of 128 tokens with 128
// distinct rank-16 adapters, with nothing of the expand but the reads: the same grid (512 blocks of 256 threads,
// at most 4 per SM), the same runs of B (q/k/v of a Llama-3-8B layer: per token two 2048-column runs of q's B and
// one run each of k's and v's, 64 and 32 KB, in one arena per module as LoraSlots lays them out), L2 flushed
// before every launch as in a step. Two readers: 16-byte loads straight into registers (8 in flight per thread),
// and the expand's bulk path (16 KB bulk copies into shared memory, two in flight per block). If both reach near
// the copy rate, what slows the expand (bench/cuda_engine_notes.md, runs 81-84) is its own structure; if they
// crawl as it does, it is the access pattern.
// Run: lora_stream_probe (prints each reader's median time, GB/s and share of the device-to-device copy rate).
#include "lora_stream_probe.h"

#include <cstdio>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/fill.h"
#include "core/timing.h"
#include "cuda_bench.h"

namespace {

using namespace ls::bench;

// Median microseconds of `launch` on the backend's stream, each run after a read sweep of `flush` that evicts B
// from L2 (as a step's weights do) and leaves clean lines, as the cuBLASLt tuner's cold timing does (cuda_gemm.cpp).
double median_us(ls::Backend& backend, const std::function<void()>& launch, const ls::Buffer& flush) {
  cudaStream_t stream = ls::as_cuda_backend(backend)->stream();
  std::vector<double> us;
  for (int i = 0; i < 25; ++i) {
    const ls::cuda::Stream sweep{stream, false};
    LS_CUDA_CHECK(ls::cuda::launch_read_sweep(flush.data(), static_cast<int64_t>(flush.bytes()), sweep));
    const double ms = ls::cuda_time_ms(backend, launch);
    if (i >= 5) us.push_back(ms * 1e3);
  }
  return ls::median(us);
}

}  // namespace

int main() {
  auto made = ls::make_backend("cuda");
  if (!made.is_ok()) {
    std::fprintf(stderr, "lora_stream_probe: %s\n", made.status().to_string().c_str());
    return 1;
  }
  ls::Backend& backend = **made;
  cudaStream_t stream = ls::as_cuda_backend(backend)->stream();
  const size_t q_bytes = kProbeTokens * kProbeQ * kProbeRank * 2, kv_bytes = kProbeTokens * kProbeKv * kProbeRank * 2;
  ls::Buffer q = backend.allocate(q_bytes).value(), k = backend.allocate(kv_bytes).value();
  ls::Buffer v = backend.allocate(kv_bytes).value(), out = backend.allocate(kProbeBlocks * sizeof(float)).value();
  ls::Buffer flush = backend.allocate(size_t{256} << 20).value();
  for (ls::Buffer* b : {&q, &k, &v}) LS_CUDA_CHECK(cudaMemsetAsync(b->data(), 0x3c, b->bytes(), stream));  // ~0.01
  const StreamArenas a{static_cast<const unsigned char*>(q.data()), static_cast<const unsigned char*>(k.data()),
                       static_cast<const unsigned char*>(v.data())};
  auto* sums = static_cast<float*>(out.data());
  const double bytes = static_cast<double>(kProbeTokens) * (2 * kProbeRun + 2 * kProbeKv) * kProbeRank * 2;
  const double rate = ls::cuda_copy_bandwidth(backend, size_t{1} << 30, 20);
  std::printf("copy rate %.0f GB/s; B of one q/k/v expand at 128 distinct: %.1f MB, floor %.2f us\n", rate / 1e9,
              bytes / 1e6, bytes / rate * 1e6);
  const double direct = median_us(backend, [&] { LS_CUDA_CHECK(launch_stream_reader(a, false, sums, stream)); }, flush);
  const double bulk = median_us(backend, [&] { LS_CUDA_CHECK(launch_stream_reader(a, true, sums, stream)); }, flush);
  for (auto [name, us] : {std::pair{"direct 16-byte loads", direct}, {"bulk copies, 2 x 16 KB", bulk}})
    std::printf("  %-24s %7.2f us %7.0f GB/s %5.1f%% of the copy rate\n", name, us, bytes / (us * 1e-6) / 1e9,
                100.0 * bytes / (us * 1e-6) / rate);
  return 0;
}
