// cuda_kernel_bench.cpp: focused timings of the decode-step kernels at Llama-3-8B shapes, each against its
// alternative, with the effective bandwidth: decode attention (32 query heads, 8 KV heads, head dim 128, block
// size 16, pages shuffled as a long-running server leaves them), tensor-core kernel against the CUDA-core one;
// and the projections at 8-64 rows, the skinny weight-streaming GEMM against cuBLASLt. Disabled in ctest (they
// time; they test no more than a cross-check of the alternatives); scripts/gpu-check.sh runs them with
//   cuda_kernels_test --gtest_also_run_disabled_tests --gtest_filter='*KernelBench*'
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_bench.h"
#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaKernelBench = CudaOpTest;

struct BenchCase {
  int32_t batch, context;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST_F(CudaKernelBench, DISABLED_DecodeAttention) {
  constexpr int64_t kHeads = 32, kKvHeads = 8, kDim = 128;
  constexpr int32_t kBlock = 16;
  Backend& gpu = *p_.gpu;
  const std::vector<BenchCase> cases = {{1, 1024}, {32, 1024}, {128, 1024}, {4, 8192}, {64, 2048}};
  int32_t max_blocks = 0;
  for (const BenchCase& c : cases) max_blocks = std::max(max_blocks, c.batch * ((c.context + kBlock - 1) / kBlock));
  const int64_t width = kKvHeads * kDim, slots = static_cast<int64_t>(max_blocks) * kBlock;
  Buffer kmem = gpu.allocate(static_cast<size_t>(slots * width) * 2).value();
  Buffer vmem = gpu.allocate(static_cast<size_t>(slots * width) * 2).value();
  gpu.fill_uniform(Tensor::make(kmem.data(), DType::kBF16, slots, width), 11, -1.0f, 1.0f);
  gpu.fill_uniform(Tensor::make(vmem.data(), DType::kBF16, slots, width), 12, -1.0f, 1.0f);
  KvLayer cache{kmem.data(), vmem.data(), max_blocks, kBlock, kKvHeads, kDim};
  AttentionParams params;
  params.num_heads = kHeads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(kDim));

  std::printf("decode attention, 32/8 heads, d 128, block 16, shuffled pages (median of 30 single launches; "
              "mean of 50 back-to-back):\n");
  std::printf("  %6s %8s %10s | %10s %8s %10s | %10s %8s %10s | %9s\n", "batch", "context", "KV MB", "tc us",
              "tc GB/s", "tc b2b us", "simt us", "GB/s", "b2b us", "tc/simt");
  for (const BenchCase& c : cases) {
    std::vector<int32_t> pages(max_blocks);
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng_);
    ForwardBatch fb;
    const int32_t per_seq = (c.context + kBlock - 1) / kBlock;
    for (int32_t s = 0; s < c.batch; ++s) {
      SequenceStep st;
      st.num_cached = c.context - 1;
      st.tokens = {1};
      st.block_table.assign(pages.begin() + s * per_seq, pages.begin() + (s + 1) * per_seq);
      fb.seqs.push_back(st);
    }
    Meta m = meta(fb, kBlock, max_blocks, 10);
    Buffer qmem = gpu.allocate(static_cast<size_t>(c.batch * kHeads * kDim) * 2).value();
    Buffer omem = gpu.allocate(static_cast<size_t>(c.batch * kHeads * kDim) * 2).value();
    const Tensor q = Tensor::make(qmem.data(), DType::kBF16, c.batch, kHeads * kDim);
    const Tensor out = Tensor::make(omem.data(), DType::kBF16, c.batch, kHeads * kDim);
    gpu.fill_uniform(q, 13, -2.0f, 2.0f);
    const double kv_bytes = 2.0 * c.batch * c.context * width * 2;
    double single[2], b2b[2];
    std::vector<float> result[2];
    for (int which = 0; which < 2; ++which) {
      set_cuda_options([which](CudaBackendOptions& o) {
        o.decode_attention = which == 0 ? CudaBackendOptions::DecodeAttention::kTensorCore
                                        : CudaBackendOptions::DecodeAttention::kSimt;
      });
      poison(gpu, out);
      auto once = [&] { gpu.attention(m.gpu, q, cache, params, out); };
      once();
      result[which] = download(gpu, out);
      std::vector<double> t;
      for (int i = 0; i < 30; ++i) t.push_back(cuda_time_ms(gpu, once) * 1e3);
      single[which] = median(t);
      b2b[which] = cuda_time_ms(gpu, [&] {
                     for (int i = 0; i < 50; ++i) once();
                   }) * 1e3 / 50;
    }
    set_cuda_options([](CudaBackendOptions& o) { o.decode_attention = CudaBackendOptions::DecodeAttention::kTensorCore; });
    EXPECT_LT(rel_error(result[0], result[1]), 1e-2) << "batch " << c.batch << " context " << c.context;
    std::printf("  %6d %8d %10.1f | %10.1f %8.0f %10.1f | %10.1f %8.0f %10.1f | %9.2f\n", c.batch, c.context,
                kv_bytes / 1e6, single[0], kv_bytes / (b2b[0] * 1e-6) / 1e9, b2b[0], single[1],
                kv_bytes / (b2b[1] * 1e-6) / 1e9, b2b[1], b2b[0] / b2b[1]);
  }
}

// The projections of one Llama-3-8B layer (qkv, o, gate_up, down) at decode batch sizes.
TEST_F(CudaKernelBench, DISABLED_DecodeLinear) {
  CudaBackend* cuda = as_cuda_backend(*p_.gpu);
  ASSERT_NE(cuda, nullptr);
  Backend& gpu = *p_.gpu;
  struct Proj {
    const char* name;
    int64_t n, k;
  };
  const std::vector<Proj> projs = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096},
                                   {"down", 4096, 14336}};
  const int64_t max_w = 28672 * 4096;
  Buffer wmem = gpu.allocate(static_cast<size_t>(max_w) * 2).value();
  Buffer xmem = gpu.allocate(128 * 14336 * 2).value(), omem = gpu.allocate(128 * 28672 * 2).value();
  gpu.fill_uniform(Tensor::make(wmem.data(), DType::kBF16, 1, max_w), 21, -0.05f, 0.05f);
  gpu.fill_uniform(Tensor::make(xmem.data(), DType::kBF16, 1, 128 * 14336), 22, -1.0f, 1.0f);
  const CudaBackendOptions saved = cuda->options();
  std::printf("decode projections (mean of 20 back-to-back launches; weight GB/s):\n");
  std::printf("  %-8s %5s | %10s %8s | %10s %8s | %8s\n", "proj", "rows", "skinny us", "GB/s", "cublas us", "GB/s",
              "sk/cub");
  for (int64_t m : {8, 16, 32, 64}) {
    for (const Proj& pr : projs) {
      // Up to 4 copies of the weights in turn, so that L2 (50 MB) holds none of them between launches.
      const int64_t copies = std::min<int64_t>(4, max_w / (pr.n * pr.k));
      auto weight = [&](int64_t i) {
        return Tensor::make(static_cast<uint16_t*>(wmem.data()) + (i % copies) * pr.n * pr.k, DType::kBF16, pr.n,
                            pr.k);
      };
      const Tensor x = Tensor::make(xmem.data(), DType::kBF16, m, pr.k);
      const Tensor out = Tensor::make(omem.data(), DType::kBF16, m, pr.n);
      double us[2];
      std::vector<float> result[2];
      for (int which = 0; which < 2; ++which) {
        set_cuda_options([which](CudaBackendOptions& o) {
          o.skinny = which == 0 ? CudaBackendOptions::Skinny::kAll : CudaBackendOptions::Skinny::kOff;
        });
        auto once = [&](int64_t i) { gpu.linear(x, weight(i), Tensor{}, out); };
        for (int64_t i = 0; i < copies; ++i) once(i);  // plans, tuning, scratch
        poison(gpu, out);
        once(0);
        result[which] = download(gpu, out);
        us[which] = cuda_time_ms(gpu, [&] {
                      for (int i = 0; i < 20; ++i) once(i);
                    }) * 1e3 / 20;
      }
      EXPECT_LT(rel_error(result[0], result[1]), 1e-2) << pr.name << " rows " << m;
      const double bytes = 2.0 * pr.n * pr.k;
      std::printf("  %-8s %5lld | %10.1f %8.0f | %10.1f %8.0f | %8.2f\n", pr.name, static_cast<long long>(m), us[0],
                  bytes / (us[0] * 1e-6) / 1e9, us[1], bytes / (us[1] * 1e-6) / 1e9, us[0] / us[1]);
    }
  }
  cuda->set_options(saved);
}

}  // namespace
}  // namespace ls::testing
