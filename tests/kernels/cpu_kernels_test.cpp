// cpu_kernels_test.cpp: the CPU backend's kernels and GEMM. Every instruction-set implementation this machine
// runs (AVX-512, AVX2) equals the portable one bit for bit on every op and odd shape (cpu_kernels.h fixes
// each element's operation sequence); the backend's linear gives each row the same bits whatever the batch
// size, the row's position and the thread count, for every weight format; bf16 and int8 linear stay within
// the rounding their storage implies; exp_poly and SiLU are accurate; the thread pool covers each index once;
// kv_write stores rows at their slots and skips padding rows.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_gemm.h"

namespace ls {
namespace {

using cpu::CpuKernels;
using cpu::WeightFormat;

std::vector<const CpuKernels*> vector_kernels() {
  std::vector<const CpuKernels*> out;
  if (const CpuKernels* k = cpu::avx512_kernels()) out.push_back(k);
  if (const CpuKernels* k = cpu::avx2_kernels()) out.push_back(k);
  return out;
}

std::vector<float> random_values(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A packed matrix with kOverreadBytes of slack, as the backend allocates it.
struct Packed {
  std::vector<char> memory;
  cpu::PackedMatrix m;
  Packed(WeightFormat f, int64_t rows, int64_t cols, const std::vector<float>& w) {
    memory.assign(cpu::packed_matrix_bytes(f, rows, cols) + cpu::kOverreadBytes, 0);
    m = cpu::packed_matrix_at(memory.data(), f, rows, cols);
    for (int64_t p = 0; p < m.panels; ++p) cpu::pack_panel(m, p, w.data() + p * cpu::kPanelCols * cols, cols);
  }
};

TEST(CpuKernels, GemmTilesMatchPortableBitwise) {
  const auto isas = vector_kernels();
  if (isas.empty()) GTEST_SKIP() << "no vector instruction set on this CPU";
  std::mt19937 rng(1);
  const WeightFormat formats[] = {WeightFormat::kF32, WeightFormat::kBF16, WeightFormat::kF16, WeightFormat::kI8};
  for (WeightFormat f : formats)
    for (int64_t k : {1, 2, 17, 64, 131})
      for (int64_t n : {64, 37, 1})
        for (int64_t rows : {1, 2, 3, 5, 6, 13}) {
          const std::vector<float> w = random_values(static_cast<size_t>(n * k), rng);
          const std::vector<float> x = random_values(static_cast<size_t>(rows * k), rng);
          const std::vector<float> bias = random_values(static_cast<size_t>(n), rng);
          const std::vector<float> y0 = random_values(static_cast<size_t>(rows * n), rng);
          Packed p(f, n, k, w);
          for (bool accumulate : {false, true}) {
            auto run = [&](const CpuKernels& kern) {
              std::vector<float> y = y0;
              cpu::gemm_panels(kern, cpu::PanelSource::packed(p.m), x.data(), k, rows, bias.data(), y.data(), n,
                               accumulate, 0, p.m.panels);
              return y;
            };
            const std::vector<float> ref = run(cpu::portable_kernels());
            for (const CpuKernels* isa : isas)
              EXPECT_TRUE(same_bits(run(*isa), ref)) << isa->isa << " format " << cpu::weight_format_name(f) << " k " << k
                                                     << " n " << n << " rows " << rows << " accumulate " << accumulate;
          }
        }
}

TEST(CpuKernels, LaneOpsMatchPortableBitwise) {
  const auto isas = vector_kernels();
  if (isas.empty()) GTEST_SKIP() << "no vector instruction set on this CPU";
  std::mt19937 rng(2);
  const CpuKernels& ref = cpu::portable_kernels();
  for (int64_t k : {1, 15, 16, 17, 64, 100})
    for (int64_t n : {1, 5, 16, 21})
      for (int64_t rows : {1, 3}) {
        const auto x = random_values(static_cast<size_t>(rows * k), rng), w = random_values(static_cast<size_t>(n * k), rng);
        const auto y0 = random_values(static_cast<size_t>(rows * n), rng);
        std::vector<uint16_t> w16(w.size());
        for (size_t i = 0; i < w.size(); ++i) w16[i] = float_to_bf16(w[i]);
        // The same rows chunk-interleaved (dot_rows_blocked), for n <= 16: the same bits as row-major.
        if (n <= 16) {
          std::vector<float> wb(w.size());
          std::vector<uint16_t> wb16(w.size());
          for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < k; ++i) {
              const int64_t at = i / 16 < k / 16 ? (i / 16) * 16 * n + 16 * j + i % 16 : (k / 16) * 16 * n + j * (k % 16) + i % 16;
              wb[at] = w[j * k + i];
              wb16[at] = w16[j * k + i];
            }
          std::vector<float> want(static_cast<size_t>(rows * n)), want16(want.size());
          ref.dot_rows(x.data(), k, rows, w.data(), k, n, k, want.data(), n, false);
          ref.dot_rows_bf16(x.data(), k, rows, w16.data(), k, n, k, want16.data(), n, false);
          std::vector<const CpuKernels*> all = isas;
          all.push_back(&ref);
          for (const CpuKernels* isa : all) {
            std::vector<float> got(want.size()), got16(want.size());
            isa->dot_rows_blocked(x.data(), k, rows, wb.data(), n, k, got.data(), n);
            isa->dot_rows_blocked_bf16(x.data(), k, rows, wb16.data(), n, k, got16.data(), n);
            EXPECT_TRUE(same_bits(got, want)) << isa->isa << " dot_rows_blocked k " << k << " n " << n;
            EXPECT_TRUE(same_bits(got16, want16)) << isa->isa << " dot_rows_blocked_bf16 k " << k << " n " << n;
          }
        }
        for (bool acc : {false, true}) {
          std::vector<float> want = y0, want16 = y0;
          ref.dot_rows(x.data(), k, rows, w.data(), k, n, k, want.data(), n, acc);
          ref.dot_rows_bf16(x.data(), k, rows, w16.data(), k, n, k, want16.data(), n, acc);
          for (const CpuKernels* isa : isas) {
            std::vector<float> got = y0, got16 = y0;
            isa->dot_rows(x.data(), k, rows, w.data(), k, n, k, got.data(), n, acc);
            isa->dot_rows_bf16(x.data(), k, rows, w16.data(), k, n, k, got16.data(), n, acc);
            EXPECT_TRUE(same_bits(got, want)) << isa->isa << " dot_rows k " << k << " n " << n << " rows " << rows;
            EXPECT_TRUE(same_bits(got16, want16)) << isa->isa << " dot_rows_bf16 k " << k << " n " << n << " rows " << rows;
          }
        }
      }
  for (int64_t n : {1, 7, 16, 33, 100, 1000}) {
    const auto scores = random_values(static_cast<size_t>(n), rng, -30.0f, 5.0f);
    const auto g = random_values(static_cast<size_t>(n), rng, -20.0f, 20.0f), u = random_values(static_cast<size_t>(n), rng);
    for (int64_t heads : {1, 3, 7}) {
      const auto weights = random_values(static_cast<size_t>(heads * 9), rng), v = random_values(static_cast<size_t>(7 * (n + 3)), rng);
      const auto y0 = random_values(static_cast<size_t>(heads * (n + 1)), rng);
      std::vector<float> want = y0;
      ref.accumulate_rows(weights.data(), 9, heads, v.data(), n + 3, 7, n, want.data(), n + 1);
      for (const CpuKernels* isa : isas) {
        std::vector<float> got = y0;
        isa->accumulate_rows(weights.data(), 9, heads, v.data(), n + 3, 7, n, got.data(), n + 1);
        EXPECT_TRUE(same_bits(got, want)) << isa->isa << " accumulate_rows n " << n << " heads " << heads;
      }
    }
    std::vector<float> e_ref = scores, silu_ref(n);
    const float sum_ref = ref.softmax_exp(e_ref.data(), n, 0.125f);
    ref.silu_mul(g.data(), u.data(), silu_ref.data(), n);
    for (const CpuKernels* isa : isas) {
      std::vector<float> e = scores, silu(n);
      const float sum = isa->softmax_exp(e.data(), n, 0.125f);
      isa->silu_mul(g.data(), u.data(), silu.data(), n);
      EXPECT_TRUE(same_bits(e, e_ref) && std::memcmp(&sum, &sum_ref, 4) == 0) << isa->isa << " softmax_exp n " << n;
      EXPECT_TRUE(same_bits(silu, silu_ref)) << isa->isa << " silu_mul n " << n;
    }
  }
}

TEST(CpuKernels, ExpAndSiluAreAccurate) {
  const CpuKernels& k = cpu::portable_kernels();
  double worst = 0;
  std::vector<float> xs = {0.0f};  // softmax_exp subtracts the max (0): e = exp(x)
  for (float x = -86.0f; x <= 0.0f; x += 0.0113f) xs.push_back(x);
  std::vector<float> e = xs;
  k.softmax_exp(e.data(), static_cast<int64_t>(e.size()), 1.0f);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double want = std::exp(static_cast<double>(xs[i]));
    worst = std::max(worst, std::fabs(e[i] - want) / want);
  }
  EXPECT_LT(worst, 1e-6);
  std::vector<float> g = {-100.0f, -20.0f, -1.0f, 0.0f, 0.5f, 3.0f, 100.0f}, u(g.size(), 1.0f), out(g.size());
  k.silu_mul(g.data(), u.data(), out.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));
    EXPECT_NEAR(out[i], want, 1e-6 * std::max(1.0, std::fabs(want))) << g[i];
  }
}

// The backend's linear on rows solo, in batches of many sizes at every position, with 1 and 2 threads.
TEST(CpuLinear, RowsAreBatchInvariantInEveryFormat) {
  std::mt19937 rng(3);
  const int64_t n = 300, k = 203;
  const auto w = random_values(static_cast<size_t>(n * k), rng);
  const auto bias = random_values(static_cast<size_t>(n), rng);
  const auto x = random_values(static_cast<size_t>(70 * k), rng);
  for (const char* format : {"f32", "bf16", "int8"}) {
    std::vector<float> solo(static_cast<size_t>(70 * n));
    for (int threads : {1, 2}) {
      auto b = make_cpu_backend(threads, format);
      WeightMatrix wm = b->allocate_weight(n, k, DType::kF32).value();
      b->upload_weight(wm.tensor, w.data());
      Tensor bt = Tensor::make(const_cast<float*>(bias.data()), DType::kF32, 1, n);
      if (threads == 1) {
        for (int64_t r = 0; r < 70; ++r)
          b->linear(Tensor::make(const_cast<float*>(x.data()) + r * k, DType::kF32, 1, k), wm.tensor, bt,
                    Tensor::make(solo.data() + r * n, DType::kF32, 1, n));
      }
      for (int64_t m : {1, 2, 5, 8, 13, 32, 70}) {
        for (int64_t start : {int64_t{0}, 70 - m}) {
          std::vector<float> y(static_cast<size_t>(m * n));
          b->linear(Tensor::make(const_cast<float*>(x.data()) + start * k, DType::kF32, m, k), wm.tensor, bt,
                    Tensor::make(y.data(), DType::kF32, m, n));
          EXPECT_EQ(std::memcmp(y.data(), solo.data() + start * n, y.size() * sizeof(float)), 0)
              << format << " threads " << threads << " batch " << m << " from row " << start;
        }
      }
    }
  }
}

// kv_write stores each row at its slot and skips the rows of slot -1 (a padded decode step's padding rows, which
// the CUDA kernel skips too).
TEST(CpuKvWrite, StoresRowsAtTheirSlotsAndSkipsPadding) {
  auto b = make_cpu_backend(1, "f32");
  constexpr int64_t kHeads = 2, kDim = 4, kWidth = kHeads * kDim, kSlots = 8;
  std::vector<float> kc(kSlots * kWidth, -7.0f), vc(kSlots * kWidth, -7.0f);
  KvLayer cache;
  cache.k = kc.data();
  cache.v = vc.data();
  cache.num_blocks = 2;
  cache.block_size = 4;
  cache.num_kv_heads = kHeads;
  cache.head_dim = kDim;
  const std::vector<int32_t> slots = {5, -1, 0, -1};
  std::vector<float> k(slots.size() * kWidth), v(slots.size() * kWidth);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i);
    v[i] = 1000.0f + static_cast<float>(i);
  }
  BatchMeta meta;
  meta.num_tokens = static_cast<int32_t>(slots.size());
  meta.kv_slots = slots.data();
  const auto rows = static_cast<int64_t>(slots.size());
  b->kv_write(meta, Tensor::make(k.data(), DType::kF32, rows, kWidth), Tensor::make(v.data(), DType::kF32, rows, kWidth),
              cache);
  for (int64_t s = 0; s < kSlots; ++s) {
    const int64_t row = s == 5 ? 0 : s == 0 ? 2 : -1;  // the token stored at slot s
    for (int64_t c = 0; c < kWidth; ++c) {
      EXPECT_EQ(kc[s * kWidth + c], row < 0 ? -7.0f : k[row * kWidth + c]) << "slot " << s;
      EXPECT_EQ(vc[s * kWidth + c], row < 0 ? -7.0f : v[row * kWidth + c]) << "slot " << s;
    }
  }
}

// bf16 and int8 linear against float32 math on the same weights: bounded by the storage's rounding.
TEST(CpuLinear, ReducedFormatsStayWithinTheirRounding) {
  std::mt19937 rng(4);
  const int64_t n = 128, k = 512;
  const auto w = random_values(static_cast<size_t>(n * k), rng);
  const auto x = random_values(static_cast<size_t>(4 * k), rng);
  for (auto [format, bound] : {std::pair{"f32", 1e-6}, {"bf16", 2e-3}, {"int8", 4e-3}}) {
    auto b = make_cpu_backend(2, format);
    WeightMatrix wm = b->allocate_weight(n, k, DType::kF32).value();
    b->upload_weight(wm.tensor, w.data());
    std::vector<float> y(static_cast<size_t>(4 * n));
    b->linear(Tensor::make(const_cast<float*>(x.data()), DType::kF32, 4, k), wm.tensor, Tensor{},
              Tensor::make(y.data(), DType::kF32, 4, n));
    double worst = 0;
    for (int64_t r = 0; r < 4; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double want = 0, scale = 0;
        for (int64_t i = 0; i < k; ++i) {
          want += static_cast<double>(x[r * k + i]) * w[c * k + i];
          scale += std::fabs(static_cast<double>(x[r * k + i]) * w[c * k + i]);
        }
        worst = std::max(worst, std::fabs(y[r * n + c] - want) / scale);
      }
    EXPECT_LT(worst, bound) << format;
    if (std::string(format) != "f32") {
      EXPECT_GT(worst, 1e-6) << format << " not stored in its format?";
    }
    std::printf("%-5s linear: worst error %.2e of sum |x w|\n", format, worst);
  }
}

// Every index exactly once, with workers spinning (200 us) or asleep between calls (0 us), in chunks of 1 and 7.
TEST(CpuThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int spin_us : {0, 200}) {
    CpuThreadPool pool(3, spin_us);
    for (int64_t n : {0, 1, 2, 7, 1000})
      for (int64_t chunk : {1, 7}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        for (int rep = 0; rep < 50; ++rep)
          pool.parallel_for(n, chunk, [&](int64_t b, int64_t e) {
            EXPECT_TRUE(e - b == chunk || e == n) << "chunk [" << b << ", " << e << ")";
            for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
          });
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 50) << "n " << n << " index " << i;
      }
  }
}

}  // namespace
}  // namespace ls
