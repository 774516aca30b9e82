// cuda_sampling_test.cpp: the sampling ops of the CUDA backend against their CPU twins: sample draws the same
// token as the CPU from the same logits and seeds under every filter combination (typical-p included), and a
// row's token does not depend on the rows beside it; apply_penalties rewrites the same logits to the bit;
// logprobs gives the CPU's target log-probability and top-n ids (ties to the lower id) within float rounding.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaSampling = CudaOpTest;

std::vector<SamplingParams> param_grid(std::mt19937& rng, int rows) {
  std::vector<SamplingParams> v;
  for (int r = 0; r < rows; ++r) {
    SamplingParams p;
    switch (r % 11) {
      case 0: break;  // greedy
      case 1: p.temperature = 1.0f; break;
      case 2: p.temperature = 0.7f; p.top_k = 40; break;
      case 3: p.temperature = 1.3f; p.top_p = 0.9f; break;
      case 4: p.temperature = 1.0f; p.min_p = 0.05f; break;
      case 5: p.temperature = 0.8f; p.top_k = 1; break;
      case 6: p.temperature = 1.0f; p.top_k = 100; p.top_p = 0.5f; p.min_p = 0.02f; break;
      case 7: p.temperature = 2.0f; p.top_p = 0.99f; break;
      case 8: p.temperature = 1.0f; p.typical_p = 0.9f; break;
      case 9: p.temperature = 0.7f; p.typical_p = 0.3f; p.top_k = 50; break;
      default: p.temperature = 1.5f; p.typical_p = 0.95f; p.top_p = 0.9f; p.min_p = 0.01f; break;
    }
    p.seed = rng();
    p.step = rng() % 1000;
    v.push_back(p);
  }
  return v;
}

std::vector<int32_t> sample_on(Backend& b, const Tensor& logits, const std::vector<SamplingParams>& params) {
  Buffer tokens = upload_ints(b, std::vector<int32_t>(logits.rows, -1));
  b.sample(logits, params.data(), static_cast<int32_t*>(tokens.data()));
  return download_ints(b, tokens.data(), logits.rows);
}

TEST_F(CudaSampling, SameTokensAsCpu) {
  SCOPED_TRACE(trace());
  for (int64_t vocab : {1000, 128256}) {
    for (int rows : {1, 7, 99}) {
      // Peaked rows (a few large logits), as language models produce.
      Twin logits = make_twin(p_, rows, vocab, rng_, -5, 5, 0, 0, true);
      std::vector<float> host = logits.host;
      for (int r = 0; r < rows; ++r)
        for (int i = 0; i < 20; ++i) host[r * vocab + rng_() % vocab] += 8.0f * (i % 4);
      set_twin(p_, logits, host);
      const std::vector<SamplingParams> params = param_grid(rng_, rows);
      const std::vector<int32_t> cpu = sample_on(*p_.cpu, logits.cpu, params);
      const std::vector<int32_t> gpu = sample_on(*p_.gpu, logits.gpu, params);
      EXPECT_EQ(gpu, cpu) << "vocab " << vocab << " rows " << rows;
      // Greedy rows are the argmax; every token is in range.
      for (int r = 0; r < rows; ++r) {
        ASSERT_GE(gpu[r], 0);
        ASSERT_LT(gpu[r], vocab);
        if (params[r].temperature == 0.0f) {
          const float* row = host.data() + r * vocab;
          EXPECT_EQ(gpu[r], std::max_element(row, row + vocab) - row);
        }
      }
    }
  }
}

TEST_F(CudaSampling, RowIndependentOfBatch) {
  SCOPED_TRACE(trace());
  const int64_t vocab = 32000;
  Twin logits = make_twin(p_, 22, vocab, rng_, -3, 3, 0, 0, true);
  const std::vector<SamplingParams> params = param_grid(rng_, 22);
  const std::vector<int32_t> together = sample_on(*p_.gpu, logits.gpu, params);
  for (int r = 0; r < 22; ++r) {
    const std::vector<int32_t> alone = sample_on(*p_.gpu, logits.gpu.row_slice(r, 1), {params[r]});
    EXPECT_EQ(alone[0], together[r]) << "row " << r;
  }
}

// Random token histories: per row up to 300 distinct tokens (some prompt-only, count 0), penalties of every kind.
struct Histories {
  std::vector<int32_t> row_start{0}, token, count;
  std::vector<PenaltyParams> params;
  TokenCounts counts() const {
    return {static_cast<int32_t>(params.size()), row_start.data(), token.data(), count.data(), params.data()};
  }
};

Histories random_histories(std::mt19937& rng, int rows, int64_t vocab) {
  Histories h;
  for (int r = 0; r < rows; ++r) {
    PenaltyParams p;
    switch (r % 5) {
      case 0: break;  // none
      case 1: p.repetition = 1.3f; break;
      case 2: p.frequency = 0.37f; p.presence = 0.61f; break;
      case 3: p.repetition = 0.77f; p.frequency = -0.2f; break;
      default: p.repetition = 1.1f; p.frequency = 0.1f; p.presence = 1.7f; break;
    }
    h.params.push_back(p);
    const int n = static_cast<int>(rng() % 300);
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < vocab; ++i) ids[i] = static_cast<int32_t>(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int i = 0; i < n; ++i) {
      h.token.push_back(ids[i]);
      h.count.push_back(static_cast<int32_t>(rng() % 4));
    }
    h.row_start.push_back(static_cast<int32_t>(h.token.size()));
  }
  return h;
}

TEST_F(CudaSampling, PenaltiesBitIdentical) {
  SCOPED_TRACE(trace());
  for (int64_t vocab : {1000, 128256}) {
    for (int rows : {1, 7, 99}) {
      Twin logits = make_twin(p_, rows, vocab, rng_, -10, 10, vocab + 64, 32, true);
      const Histories h = random_histories(rng_, rows, vocab);
      p_.cpu->apply_penalties(logits.cpu, h.counts());
      p_.gpu->apply_penalties(logits.gpu, h.counts());
      const std::vector<float> cpu = download(*p_.cpu, logits.cpu), gpu = download(*p_.gpu, logits.gpu);
      ASSERT_EQ(cpu.size(), gpu.size());
      size_t changed = 0;
      for (size_t i = 0; i < cpu.size(); ++i) {
        ASSERT_EQ(std::memcmp(&cpu[i], &gpu[i], 4), 0) << "vocab " << vocab << " rows " << rows << " element " << i;
        changed += cpu[i] != logits.host[i];
      }
      if (rows > 1) {
        EXPECT_GT(changed, 0u);
      }
    }
  }
}

TEST_F(CudaSampling, LogprobsMatchCpu) {
  SCOPED_TRACE(trace());
  for (int64_t vocab : {7, 1000, 128256}) {
    for (int rows : {1, 7, 99}) {
      for (int32_t top_n : {0, 1, 5, 20}) {
        Twin logits = make_twin(p_, rows, vocab, rng_, -8, 8, 0, 0, true);
        // Ties among the largest values, so the order of equal logits (lower id first) is tested.
        std::vector<float> host = logits.host;
        for (int r = 0; r < rows; ++r)
          for (int i = 0; i < 6; ++i) host[r * vocab + rng_() % vocab] = 9.5f;
        set_twin(p_, logits, host);
        std::vector<int32_t> targets(rows);
        for (int r = 0; r < rows; ++r) targets[r] = r % 9 == 8 ? -1 : static_cast<int32_t>(rng_() % vocab);
        const size_t n = static_cast<size_t>(rows) * top_n;
        std::vector<float> cpu_lp(rows), cpu_top(n);
        std::vector<int32_t> cpu_ids(n);
        p_.cpu->logprobs(logits.cpu, targets.data(), top_n, cpu_lp.data(), cpu_ids.data(), cpu_top.data());
        Buffer g_targets = upload_ints(*p_.gpu, targets);
        Buffer g_lp = p_.gpu->allocate(rows * sizeof(float)).value();
        Buffer g_ids = p_.gpu->allocate(std::max<size_t>(n, 1) * sizeof(int32_t)).value();
        Buffer g_top = p_.gpu->allocate(std::max<size_t>(n, 1) * sizeof(float)).value();
        p_.gpu->logprobs(logits.gpu, static_cast<const int32_t*>(g_targets.data()), top_n,
                         static_cast<float*>(g_lp.data()), static_cast<int32_t*>(g_ids.data()),
                         static_cast<float*>(g_top.data()));
        std::vector<float> gpu_lp(rows), gpu_top(n);
        p_.gpu->copy_to_host(gpu_lp.data(), g_lp.data(), rows * sizeof(float));
        p_.gpu->copy_to_host(gpu_top.data(), g_top.data(), n * sizeof(float));
        const std::vector<int32_t> gpu_ids = download_ints(*p_.gpu, g_ids.data(), n);
        const std::string where = "vocab " + std::to_string(vocab) + " rows " + std::to_string(rows) + " top " +
                                  std::to_string(top_n);
        for (int r = 0; r < rows; ++r) {
          if (std::isinf(cpu_lp[r])) {
            EXPECT_EQ(cpu_lp[r], gpu_lp[r]) << where;
          } else {
            EXPECT_NEAR(gpu_lp[r], cpu_lp[r], 1e-5 * std::max(1.0f, std::fabs(cpu_lp[r]))) << where << " row " << r;
          }
        }
        EXPECT_EQ(gpu_ids, cpu_ids) << where;
        for (size_t i = 0; i < n; ++i) {
          if (std::isinf(cpu_top[i])) {
            EXPECT_EQ(cpu_top[i], gpu_top[i]) << where;
          } else {
            EXPECT_NEAR(gpu_top[i], cpu_top[i], 1e-5 * std::max(1.0f, std::fabs(cpu_top[i]))) << where << " entry " << i;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ls::testing
