// cuda_ops_test.cpp: every element-wise and projection op of the CUDA backend against its CPU twin through the
// Backend interface, on odd shapes (1, 7, 99 rows; widths that are and are not multiples of 8; column slices
// whose ld exceeds cols). Inputs are random bf16 values both backends share; GPU outputs are poisoned with NaN
// first. Tolerances: ||gpu - cpu|| / ||cpu|| below 1e-2 for bf16 results (METHOD.md), exact for copies.
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaOps = CudaOpTest;
constexpr double kBf16Tol = 1e-2;

ForwardBatch token_batch(const std::vector<int32_t>& ids) {
  ForwardBatch fb;
  SequenceStep s;
  s.tokens = ids;
  s.block_table.assign((ids.size() + 15) / 16, 0);
  s.logits = LogitsWanted::kAll;
  fb.seqs.push_back(s);
  return fb;
}

TEST_F(CudaOps, Embedding) {
  SCOPED_TRACE(trace());
  for (int64_t t : {1, 7, 99}) {
    for (int64_t hidden : {64, 96, 4096, 50}) {
      Twin table = make_twin(p_, 1000, hidden, rng_);
      std::vector<int32_t> ids(t);
      for (auto& id : ids) id = static_cast<int32_t>(rng_() % 1000);
      Meta m = meta(token_batch(ids), 16, 1, 1000);
      Twin out = make_twin(p_, t, hidden, rng_, -1, 1, hidden + 8, 4);
      poison(*p_.gpu, out.gpu);
      p_.cpu->embedding(m.packed.meta, table.cpu, out.cpu);
      p_.gpu->embedding(m.gpu, table.gpu, out.gpu);
      EXPECT_EQ(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)) << "tokens " << t << " hidden " << hidden;
    }
  }
}

TEST_F(CudaOps, RmsNormAndAddRmsNorm) {
  SCOPED_TRACE(trace());
  for (int64_t rows : {1, 7, 99}) {
    for (int64_t cols : {64, 4096, 50, 1000}) {
      for (int64_t pad : {0, 8, 3}) {
        const int64_t ld = cols + pad;
        Twin x = make_twin(p_, rows, cols, rng_, -2, 2, ld, pad ? 1 : 0);
        Twin w = make_twin(p_, 1, cols, rng_, 0.5f, 1.5f);
        Twin out = make_twin(p_, rows, cols, rng_, -1, 1, ld, 0);
        poison(*p_.gpu, out.gpu);
        p_.cpu->rms_norm(x.cpu, w.cpu, 1e-5f, out.cpu);
        p_.gpu->rms_norm(x.gpu, w.gpu, 1e-5f, out.gpu);
        EXPECT_LT(rel_error(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)), kBf16Tol)
            << "rms_norm rows " << rows << " cols " << cols << " ld " << ld;

        Twin res = make_twin(p_, rows, cols, rng_, -2, 2, ld, 0);
        poison(*p_.gpu, out.gpu);
        p_.cpu->add_rms_norm(res.cpu, x.cpu, w.cpu, 1e-6f, out.cpu);
        p_.gpu->add_rms_norm(res.gpu, x.gpu, w.gpu, 1e-6f, out.gpu);
        EXPECT_LT(rel_error(download(*p_.gpu, res.gpu), download(*p_.cpu, res.cpu)), kBf16Tol)
            << "add_rms_norm residual rows " << rows << " cols " << cols << " ld " << ld;
        EXPECT_LT(rel_error(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)), kBf16Tol)
            << "add_rms_norm out rows " << rows << " cols " << cols << " ld " << ld;
      }
    }
  }
}

void check_linear(BackendPair& p, std::mt19937& rng, int64_t m, int64_t n, int64_t k, bool bias, bool out_f32,
                  int64_t x_pad) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(k));
  Twin x = make_twin(p, m, k, rng, -1, 1, k + x_pad, x_pad ? 8 : 0);
  Twin w = make_twin(p, n, k, rng, -bound, bound);
  Twin b = bias ? make_twin(p, 1, n, rng, -1, 1) : Twin{};
  Twin out = make_twin(p, m, n, rng, -1, 1, 0, 0, out_f32);
  poison(*p.gpu, out.gpu);
  p.cpu->linear(x.cpu, w.cpu, b.cpu, out.cpu);
  p.gpu->linear(x.gpu, w.gpu, b.gpu, out.gpu);
  EXPECT_LT(rel_error(download(*p.gpu, out.gpu), download(*p.cpu, out.cpu)), out_f32 ? 5e-3 : kBf16Tol)
      << "linear m " << m << " n " << n << " k " << k << (bias ? " bias" : "") << (out_f32 ? " f32" : "") << " x ld "
      << k + x_pad;
}

// Shapes reach every path: GEMV (1-4 rows), the skinny weight-streaming GEMM (5-128 rows, 65-128 on wgmma; partial
// feature tiles, partial last K steps, narrow n splitting K), and cuBLASLt (everything else, and with both fast
// paths off).
TEST_F(CudaOps, Linear) {
  SCOPED_TRACE(trace());
  using Skinny = CudaBackendOptions::Skinny;
  set_cuda_options([](CudaBackendOptions& o) {
    o.gemv_rows = 4;
    o.skinny = Skinny::kAll;
  });
  for (int64_t m : {1, 2, 3, 4, 7, 8, 20, 32, 50, 64, 65, 99, 128, 200}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{96, 64}, {1000, 4096}, {4096, 1024}, {77, 40}, {384, 14336},
                        {6144, 512}}) {
      check_linear(p_, rng_, m, n, k, false, false, 0);
      check_linear(p_, rng_, m, n, k, true, false, 16);
      check_linear(p_, rng_, m, n, k, false, true, 8);
    }
  }
  set_cuda_options([](CudaBackendOptions& o) { o.gemv_rows = 0; });  // 1-4 rows through the skinny GEMM
  for (int64_t m : {1, 2, 3, 4}) check_linear(p_, rng_, m, 4096, 1024, true, false, 0);
  set_cuda_options([](CudaBackendOptions& o) { o.skinny = Skinny::kOff; });  // small batches through cuBLASLt
  for (int64_t m : {1, 3, 7, 99}) check_linear(p_, rng_, m, 4096, 1024, true, false, 0);
  set_cuda_options([](CudaBackendOptions& o) {
    o.gemv_rows = CudaBackendOptions{}.gemv_rows;
    o.skinny = Skinny::kAll;
  });
  // Repeated split-K products leave their accumulator clean: the second result equals the first.
  for (int rep = 0; rep < 2; ++rep) check_linear(p_, rng_, 33, 4096, 4096, true, false, 0);
  set_cuda_options([](CudaBackendOptions& o) { o.skinny = Skinny::kAuto; });
  for (int64_t m : {5, 8, 16, 32, 64}) check_linear(p_, rng_, m, 28672, 512, false, false, 0);
}

// The gate/up product with SiLU-mul against the CPU's linear + silu_mul: the fused skinny kernel (inter a multiple
// of 64; k = 1000 ends in a partial, zero-filled K box), the GEMV with SiLU-mul in its epilogue (1-2 rows in auto
// mode, 1-3 with gemv_rows 4; inter 97 ends in half a group) and the two-step path (the GEMV's SiLU off, inter 96
// or 97, more than 64 rows).
TEST_F(CudaOps, LinearSiluMul) {
  SCOPED_TRACE(trace());
  using Skinny = CudaBackendOptions::Skinny;
  struct Mode {
    Skinny skinny;
    int gemv_rows;
    bool gemv_silu;
  };
  for (Mode mode : {Mode{Skinny::kAll, 2, true}, Mode{Skinny::kAuto, 2, true}, Mode{Skinny::kAuto, 4, true},
                    Mode{Skinny::kAuto, 2, false}}) {
    set_cuda_options([mode](CudaBackendOptions& o) {
      o.skinny = mode.skinny;
      o.gemv_rows = mode.gemv_rows;
      o.gemv_silu = mode.gemv_silu;
    });
    SCOPED_TRACE("gemv_rows " + std::to_string(mode.gemv_rows) + (mode.gemv_silu ? "" : ", gemv_silu off"));
    for (int64_t m : {1, 2, 3, 4, 5, 8, 20, 32, 50, 64, 65}) {
      for (auto [inter, k] :
           {std::pair<int64_t, int64_t>{14336, 256}, {4864, 896}, {96, 40}, {97, 48}, {8192, 1000}}) {
        for (bool bias : {false, true}) {
          const float bound = 1.0f / std::sqrt(static_cast<float>(k));
          Twin x = make_twin(p_, m, k, rng_, -1, 1, k + 8, 8);
          Twin w = make_twin(p_, 2 * inter, k, rng_, -bound * 4, bound * 4);
          Twin b = bias ? make_twin(p_, 1, 2 * inter, rng_, -1, 1) : Twin{};
          Twin gate_up = make_twin(p_, m, 2 * inter, rng_);
          Twin out = make_twin(p_, m, inter, rng_, -1, 1, inter + 16, 0);
          poison(*p_.gpu, out.gpu);
          p_.cpu->linear_silu_mul(x.cpu, w.cpu, b.cpu, gate_up.cpu, out.cpu);
          p_.gpu->linear_silu_mul(x.gpu, w.gpu, b.gpu, gate_up.gpu, out.gpu);
          EXPECT_LT(rel_error(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)), kBf16Tol)
              << "m " << m << " inter " << inter << " k " << k << (bias ? " bias" : "");
        }
      }
    }
  }
}

TEST_F(CudaOps, SiluMul) {
  SCOPED_TRACE(trace());
  for (int64_t rows : {1, 7, 99}) {
    for (int64_t inter : {96, 14336, 50}) {
      Twin gu = make_twin(p_, rows, 2 * inter, rng_, -4, 4, 2 * inter + 8, 0);
      Twin out = make_twin(p_, rows, inter, rng_);
      poison(*p_.gpu, out.gpu);
      p_.cpu->silu_mul(gu.cpu, out.cpu);
      p_.gpu->silu_mul(gu.gpu, out.gpu);
      EXPECT_LT(rel_error(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)), kBf16Tol)
          << "rows " << rows << " inter " << inter;
    }
  }
}

TEST_F(CudaOps, GatherLogitRows) {
  SCOPED_TRACE(trace());
  for (int64_t t : {1, 7, 99}) {
    for (bool f32 : {false, true}) {
      std::vector<int32_t> ids(t, 1);
      ForwardBatch fb = token_batch(ids);
      fb.seqs[0].logits = LogitsWanted::kAll;
      Meta m = meta(fb, 16, 1, 1000);
      Twin src = make_twin(p_, t, 500, rng_, -1, 1, 0, 0, f32);
      Twin out = make_twin(p_, t, 500, rng_, -1, 1, 0, 0, f32);
      poison(*p_.gpu, out.gpu);
      p_.cpu->gather_logit_rows(m.packed.meta, src.cpu, out.cpu);
      p_.gpu->gather_logit_rows(m.gpu, src.gpu, out.gpu);
      EXPECT_EQ(download(*p_.gpu, out.gpu), download(*p_.cpu, out.cpu)) << "rows " << t;
    }
  }
}

TEST_F(CudaOps, Argmax) {
  SCOPED_TRACE(trace());
  for (int64_t rows : {1, 7, 99}) {
    for (int64_t vocab : {1000, 128256, 3}) {
      Twin logits = make_twin(p_, rows, vocab, rng_, -10, 10, 0, 0, true);
      Buffer cpu_tokens = p_.cpu->allocate(rows * sizeof(int32_t)).value();
      Buffer gpu_tokens = upload_ints(*p_.gpu, std::vector<int32_t>(rows, -7));
      p_.cpu->argmax(logits.cpu, static_cast<int32_t*>(cpu_tokens.data()));
      p_.gpu->argmax(logits.gpu, static_cast<int32_t*>(gpu_tokens.data()));
      EXPECT_EQ(download_ints(*p_.gpu, gpu_tokens.data(), rows),
                download_ints(*p_.cpu, cpu_tokens.data(), rows)) << "rows " << rows << " vocab " << vocab;
    }
  }
}

TEST_F(CudaOps, FillUniformMatchesCpuBeforeRounding) {
  Buffer c = p_.cpu->allocate(33 * 70 * 4).value();
  Buffer g = p_.gpu->allocate(33 * 70 * 2).value();
  const Tensor tc = Tensor::make(c.data(), DType::kF32, 33, 70), tg = Tensor::make(g.data(), DType::kBF16, 33, 70);
  p_.cpu->fill_uniform(tc, 42, -0.3f, 0.7f);
  p_.gpu->fill_uniform(tg, 42, -0.3f, 0.7f);
  std::vector<float> expect = download(*p_.cpu, tc);
  for (float& v : expect) v = round_bf16(v);
  EXPECT_EQ(download(*p_.gpu, tg), expect);
}

TEST_F(CudaOps, UploadF32RoundsToBf16) {
  std::vector<float> values(100003);
  std::uniform_real_distribution<float> dist(-3, 3);
  for (float& v : values) v = dist(rng_);
  Buffer g = p_.gpu->allocate(values.size() * 2).value();
  p_.gpu->upload_f32(g.data(), values.data(), values.size());
  std::vector<float> expect = values;
  for (float& v : expect) v = round_bf16(v);
  EXPECT_EQ(download(*p_.gpu, Tensor::make(g.data(), DType::kBF16, 1, static_cast<int64_t>(values.size()))), expect);
}

}  // namespace
}  // namespace ls::testing
