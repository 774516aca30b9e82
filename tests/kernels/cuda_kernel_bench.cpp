// cuda_kernel_bench.cpp: focused timings of the step kernels at Llama-3-8B shapes, each against its alternative
// where there is one: decode attention (32 query heads, 8 KV heads, head dim 128, block size 16, pages shuffled as
// a long-running server leaves them), tensor-core kernel against the CUDA-core one; prefill attention (512-4096
// tokens, TFLOP/s of the causal work); the projections at 8-64 rows, the skinny weight-streaming GEMM against
// cuBLASLt; and the LoRA op (one module group of a layer, rank 16) against the cuBLAS formulation: per module a
// GEMM pair (shrink into a bf16 t, then expand with beta 1) when one adapter serves all rows, a pointer-array
// batched GEMM pair when each row has its own. Disabled in ctest (they time; they test no more than a
// cross-check of the alternatives); scripts/gpu-check.sh runs them with
//   cuda_kernels_test --gtest_also_run_disabled_tests --gtest_filter='*KernelBench*'
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <array>
#include <functional>
#include <numeric>

#include <cublas_v2.h>

#include "backend/cuda/cuda_backend.h"
#include "lora/lora_slots.h"
#include "core/timing.h"
#include "cuda_bench.h"
#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaKernelBench = CudaOpTest;

struct BenchCase {
  int32_t batch, context;
};

// Llama-3-8B's attention shape (32 query heads, 8 KV heads, head dim 128) over a layer's paged cache of block size
// 16: `blocks` pages of random contents, and the shuffled page order a long-running server leaves.
struct BenchKv {
  static constexpr int64_t kHeads = 32, kKvHeads = 8, kDim = 128;
  static constexpr int32_t kBlock = 16;
  Buffer k, v;
  KvLayer cache;
  AttentionParams params;

  BenchKv(Backend& gpu, int32_t blocks) {
    const int64_t width = kKvHeads * kDim, slots = static_cast<int64_t>(blocks) * kBlock;
    k = gpu.allocate(static_cast<size_t>(slots * width) * 2).value();
    v = gpu.allocate(static_cast<size_t>(slots * width) * 2).value();
    gpu.fill_uniform(Tensor::make(k.data(), DType::kBF16, slots, width), 11, -1.0f, 1.0f);
    gpu.fill_uniform(Tensor::make(v.data(), DType::kBF16, slots, width), 12, -1.0f, 1.0f);
    cache = KvLayer{k.data(), v.data(), blocks, kBlock, kKvHeads, kDim};
    params.num_heads = kHeads;
    params.scale = 1.0f / std::sqrt(static_cast<float>(kDim));
  }
  std::vector<int32_t> shuffled_pages(std::mt19937& rng) const {
    std::vector<int32_t> pages(cache.num_blocks);
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng);
    return pages;
  }
};

TEST_F(CudaKernelBench, DISABLED_DecodeAttention) {
  constexpr int64_t kHeads = BenchKv::kHeads, kDim = BenchKv::kDim, width = BenchKv::kKvHeads * kDim;
  constexpr int32_t kBlock = BenchKv::kBlock;
  Backend& gpu = *p_.gpu;
  const std::vector<BenchCase> cases = {{1, 1024}, {32, 1024}, {128, 1024}, {4, 8192}, {64, 2048}};
  int32_t max_blocks = 0;
  for (const BenchCase& c : cases) max_blocks = std::max(max_blocks, c.batch * ((c.context + kBlock - 1) / kBlock));
  const BenchKv kv(gpu, max_blocks);

  std::printf("decode attention, 32/8 heads, d 128, block 16, shuffled pages (median of 30 single launches; "
              "mean of 50 back-to-back):\n");
  std::printf("  %6s %8s %10s | %10s %8s %10s | %10s %8s %10s | %9s\n", "batch", "context", "KV MB", "tc us",
              "tc GB/s", "tc b2b us", "simt us", "GB/s", "b2b us", "tc/simt");
  for (const BenchCase& c : cases) {
    const std::vector<int32_t> pages = kv.shuffled_pages(rng_);
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
      auto once = [&] { gpu.attention(m.gpu, q, kv.cache, kv.params, out); };
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

// Prefill attention (flash-attention tiles) at Llama-3-8B head shapes: fresh prompts of 512-4096 tokens, a batch
// of prompts, and a chunk over cached context. TFLOP/s counts the causal work only (each query's visible keys).
TEST_F(CudaKernelBench, DISABLED_PrefillAttention) {
  constexpr int64_t kHeads = BenchKv::kHeads, kDim = BenchKv::kDim;
  constexpr int32_t kBlock = BenchKv::kBlock;
  Backend& gpu = *p_.gpu;
  struct Chunk {
    int32_t seqs, cached, tokens;
  };
  const std::vector<Chunk> cases = {{1, 0, 512}, {1, 0, 1024}, {1, 0, 2048}, {1, 0, 4096}, {4, 0, 1024},
                                    {1, 1024, 512}};
  int32_t max_blocks = 0;
  for (const Chunk& c : cases) max_blocks = std::max(max_blocks, c.seqs * ((c.cached + c.tokens + kBlock - 1) / kBlock));
  const BenchKv kv(gpu, max_blocks);
  std::printf("prefill attention, 32/8 heads, d 128, block 16, shuffled pages (median of 20 single launches; "
              "mean of 20 back-to-back):\n");
  std::printf("  %5s %7s %7s | %9s %9s %8s\n", "seqs", "cached", "tokens", "us", "b2b us", "TFLOP/s");
  for (const Chunk& c : cases) {
    const std::vector<int32_t> pages = kv.shuffled_pages(rng_);
    ForwardBatch fb;
    const int32_t per_seq = (c.cached + c.tokens + kBlock - 1) / kBlock;
    double flops = 0;
    for (int32_t s = 0; s < c.seqs; ++s) {
      SequenceStep st;
      st.num_cached = c.cached;
      st.tokens.assign(c.tokens, 1);
      st.logits = LogitsWanted::kNone;
      st.block_table.assign(pages.begin() + s * per_seq, pages.begin() + (s + 1) * per_seq);
      fb.seqs.push_back(st);
      for (int32_t t = 0; t < c.tokens; ++t) flops += 4.0 * (c.cached + t + 1) * kDim * kHeads;
    }
    Meta m = meta(fb, kBlock, max_blocks, 10);
    const int64_t rows = static_cast<int64_t>(c.seqs) * c.tokens;
    Buffer qmem = gpu.allocate(static_cast<size_t>(rows * kHeads * kDim) * 2).value();
    Buffer omem = gpu.allocate(static_cast<size_t>(rows * kHeads * kDim) * 2).value();
    const Tensor q = Tensor::make(qmem.data(), DType::kBF16, rows, kHeads * kDim);
    const Tensor out = Tensor::make(omem.data(), DType::kBF16, rows, kHeads * kDim);
    gpu.fill_uniform(q, 13, -2.0f, 2.0f);
    auto once = [&] { gpu.attention(m.gpu, q, kv.cache, kv.params, out); };
    once();
    std::vector<double> t;
    for (int i = 0; i < 20; ++i) t.push_back(cuda_time_ms(gpu, once) * 1e3);
    const double b2b = cuda_time_ms(gpu, [&] {
                         for (int i = 0; i < 20; ++i) once();
                       }) * 1e3 / 20;
    std::printf("  %5d %7d %7d | %9.1f %9.1f %8.1f\n", c.seqs, c.cached, c.tokens, median(t), b2b,
                flops / (b2b * 1e-6) / 1e12);
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
  for (int64_t m : {8, 16, 32, 48, 64, 96, 128}) {
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

struct CublasLora {
  cublasHandle_t handle = nullptr;
  explicit CublasLora(cudaStream_t stream) {
    EXPECT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    cublasSetStream(handle, stream);
  }
  ~CublasLora() { cublasDestroy(handle); }
  // Row-major t[T, r] = x[T, in] A^T, then y[T, out] += t B^T (A [r, in], B [out, r]); t in bf16.
  void one(const void* x, int64_t ldx, const void* a, const void* b, void* t, void* y, int64_t ldy, int T, int r,
           int in, int out) {
    const float one_f = 1.0f, zero = 0.0f;
    EXPECT_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, r, T, in, &one_f, a, CUDA_R_16BF, in, x, CUDA_R_16BF,
                           static_cast<int>(ldx), &zero, t, CUDA_R_16BF, r, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, T, r, &one_f, b, CUDA_R_16BF, r, t, CUDA_R_16BF, r,
                           &one_f, y, CUDA_R_16BF, static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
  }
  // The same per row with its own adapter: device arrays of T pointers each.
  void batched(const void* const* x, const void* const* a, const void* const* b, void* const* t, void* const* y,
               int64_t ldy, int T, int r, int in, int out) {
    const float one_f = 1.0f, zero = 0.0f;
    EXPECT_EQ(cublasGemmBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, r, 1, in, &one_f, a, CUDA_R_16BF, in, x,
                                  CUDA_R_16BF, in, &zero, t, CUDA_R_16BF, r, T, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasGemmBatchedEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, 1, r, &one_f, b, CUDA_R_16BF, r,
                                  reinterpret_cast<const void* const*>(t), CUDA_R_16BF, r, &one_f, y, CUDA_R_16BF,
                                  static_cast<int>(ldy), T, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
              CUBLAS_STATUS_SUCCESS);
  }
};

// One layer's LoRA module groups at Llama-3-8B shapes, rank 16: our lora_group against cuBLAS, for a prefill
// chunk of 1024 tokens with one adapter, and decode batches of 32 and 128 rows with one adapter and with one
// adapter per row. Prints both times and the adapter bytes' rate; checks that both add the same deltas.
TEST_F(CudaKernelBench, DISABLED_LoraVsCublas) {
  CudaBackend* cuda = as_cuda_backend(*p_.gpu);
  ASSERT_NE(cuda, nullptr);
  Backend& gpu = *p_.gpu;
  ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 1;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  constexpr int32_t kRank = 16, kAdapters = 128;
  LoraSlots slots = LoraSlots::create(gpu, c, kAdapters, kAdapters * kRank).value();
  for (int32_t s = 0; s < kAdapters; ++s) ASSERT_TRUE(slots.load_random(s, kRank, 300 + s).is_ok());
  // Device tables -> host, for the cuBLAS pointer arrays.
  auto table = [&](LoraModule m, bool b_side) {
    const LoraModuleWeights w = slots.module(0, m);
    std::vector<const void*> ptrs(kAdapters);
    gpu.copy_to_host(ptrs.data(), b_side ? w.b : w.a, kAdapters * sizeof(void*));
    return ptrs;
  };
  struct Group {
    const char* name;
    int64_t in;
    std::vector<LoraModule> modules;
  };
  const std::vector<Group> groups = {{"q/k/v", 4096, {LoraModule::kQ, LoraModule::kK, LoraModule::kV}},
                                     {"o", 4096, {LoraModule::kO}},
                                     {"gate/up", 4096, {LoraModule::kGate, LoraModule::kUp}},
                                     {"down", 14336, {LoraModule::kDown}}};
  struct Case {
    int32_t tokens;
    bool distinct;
  };
  const std::vector<Case> cases = {{1024, false}, {32, false}, {32, true}, {128, true}};
  CublasLora cublas(cuda->stream());
  Buffer xmem = gpu.allocate(1024 * 14336 * 2).value(), tmem = gpu.allocate(1024 * 3 * kRank * 2).value();
  Buffer ymem[3];
  for (Buffer& y : ymem) y = gpu.allocate(1024 * 14336 * 2).value();
  gpu.fill_uniform(Tensor::make(xmem.data(), DType::kBF16, 1, 1024 * 14336), 5, -1.0f, 1.0f);
  std::printf("LoRA, one layer's module groups, rank %d (mean of 20 back-to-back; GB/s of adapter bytes):\n", kRank);
  std::printf("  %-8s %6s %9s | %9s %8s | %9s %8s | %7s\n", "group", "tokens", "adapters", "ours us", "GB/s",
              "cublas us", "GB/s", "ours/cb");
  for (const Case& k : cases) {
    ForwardBatch fb;
    for (int32_t i = 0; i < (k.distinct ? k.tokens : 1); ++i) {
      SequenceStep st;
      st.tokens.assign(k.distinct ? 1 : k.tokens, 1);
      st.block_table.assign((st.tokens.size() + 15) / 16, 0);
      st.lora_slot = k.distinct ? i % kAdapters : 0;
      st.logits = LogitsWanted::kNone;
      fb.seqs.push_back(st);
    }
    Meta m = meta(fb, 16, 1, 10, kAdapters);
    for (const Group& g : groups) {
      const auto n = static_cast<int>(g.modules.size());
      const Tensor x = Tensor::make(xmem.data(), DType::kBF16, k.tokens, g.in);
      LoraModuleWeights w[3];
      Tensor ys[3];
      double bytes = 0;
      for (int i = 0; i < n; ++i) {
        w[i] = slots.module(0, g.modules[i]);
        ys[i] = Tensor::make(ymem[i].data(), DType::kBF16, k.tokens, w[i].out_dim);
        gpu.fill_uniform(ys[i], 50 + i, -1.0f, 1.0f);
        bytes += 2.0 * kRank * (w[i].in_dim + w[i].out_dim) * (k.distinct ? std::min(k.tokens, kAdapters) : 1);
      }
      // Pointer arrays for the batched form.
      std::vector<Buffer> arrays;
      std::vector<std::array<const void* const*, 4>> ptr(n);
      std::vector<void* const*> yptr(n);
      if (k.distinct) {
        auto up = [&](const std::vector<const void*>& v) {
          arrays.push_back(gpu.allocate(v.size() * sizeof(void*)).value());
          gpu.copy_to_device(arrays.back().data(), v.data(), v.size() * sizeof(void*));
          return static_cast<const void* const*>(arrays.back().data());
        };
        for (int i = 0; i < n; ++i) {
          const std::vector<const void*> a = table(g.modules[i], false), b = table(g.modules[i], true);
          std::vector<const void*> xs, as, bs, ts, yv;
          for (int32_t t = 0; t < k.tokens; ++t) {
            xs.push_back(static_cast<const char*>(xmem.data()) + t * g.in * 2);
            as.push_back(a[t % kAdapters]);
            bs.push_back(b[t % kAdapters]);
            ts.push_back(static_cast<char*>(tmem.data()) + (t * 3 + i) * kRank * 2);
            yv.push_back(static_cast<char*>(ymem[i].data()) + t * w[i].out_dim * 2);
          }
          ptr[i] = {up(xs), up(as), up(bs), up(ts)};
          yptr[i] = const_cast<void* const*>(up(yv));
        }
      }
      const std::vector<const void*> a0[3] = {table(g.modules[0], false), n > 1 ? table(g.modules[1], false) : table(g.modules[0], false),
                                               n > 2 ? table(g.modules[2], false) : table(g.modules[0], false)};
      const std::vector<const void*> b0[3] = {table(g.modules[0], true), n > 1 ? table(g.modules[1], true) : table(g.modules[0], true),
                                               n > 2 ? table(g.modules[2], true) : table(g.modules[0], true)};
      auto ours = [&] { gpu.lora_group(m.gpu, x, w, ys, n); };
      auto theirs = [&] {
        for (int i = 0; i < n; ++i) {
          if (k.distinct) {
            cublas.batched(ptr[i][0], ptr[i][1], ptr[i][2], const_cast<void* const*>(ptr[i][3]), yptr[i], w[i].out_dim,
                           k.tokens, kRank, static_cast<int>(g.in), static_cast<int>(w[i].out_dim));
          } else {
            cublas.one(x.data, g.in, a0[i][0], b0[i][0], tmem.data(), ys[i].data, w[i].out_dim, k.tokens, kRank,
                       static_cast<int>(g.in), static_cast<int>(w[i].out_dim));
          }
        }
      };
      // Same deltas: y after ours minus y before, against the same for cuBLAS.
      std::vector<float> before = download(gpu, ys[0]);
      ours();
      std::vector<float> d_ours = download(gpu, ys[0]);
      gpu.fill_uniform(ys[0], 50, -1.0f, 1.0f);
      theirs();
      std::vector<float> d_cub = download(gpu, ys[0]);
      for (size_t i = 0; i < before.size(); ++i) {
        d_ours[i] -= before[i];
        d_cub[i] -= before[i];
      }
      EXPECT_LT(rel_error(d_ours, d_cub), 5e-2) << g.name << " tokens " << k.tokens;
      double us[2];
      int which = 0;
      for (const auto& f : {std::function<void()>(ours), std::function<void()>(theirs)}) {
        f();
        us[which++] = cuda_time_ms(gpu, [&] {
                        for (int i = 0; i < 20; ++i) f();
                      }) * 1e3 / 20;
      }
      std::printf("  %-8s %6d %9s | %9.1f %8.0f | %9.1f %8.0f | %7.2f\n", g.name, k.tokens,
                  k.distinct ? "distinct" : "one", us[0], bytes / (us[0] * 1e-6) / 1e9, us[1],
                  bytes / (us[1] * 1e-6) / 1e9, us[0] / us[1]);
    }
  }
}

}  // namespace
}  // namespace ls::testing
