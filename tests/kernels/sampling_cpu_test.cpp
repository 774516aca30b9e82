// sampling_cpu_test.cpp: the sampling arithmetic (backend/sampling_math.h) and the CPU backend's sample op,
// which the CUDA kernel must match bit for bit: greedy, the filters' kept sets, reproducibility per
// (seed, step), and draw frequencies that follow the softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "backend/backend.h"
#include "backend/sampling_math.h"

namespace ls {
namespace {

std::vector<int32_t> draw(Backend& b, const std::vector<float>& logits, int64_t vocab,
                          const std::vector<SamplingParams>& params) {
  const auto rows = static_cast<int64_t>(params.size());
  std::vector<float> all;
  for (int64_t r = 0; r < rows; ++r) all.insert(all.end(), logits.begin(), logits.end());
  std::vector<int32_t> tokens(rows);
  b.sample(Tensor::make(all.data(), DType::kF32, rows, vocab), params.data(), tokens.data());
  return tokens;
}

// Frequencies of each token over n draws (steps 0..n-1).
std::map<int32_t, double> frequencies(Backend& b, const std::vector<float>& logits, SamplingParams p, int n) {
  std::vector<SamplingParams> params(n, p);
  for (int i = 0; i < n; ++i) params[i].step = i;
  std::map<int32_t, double> f;
  for (int32_t t : draw(b, logits, static_cast<int64_t>(logits.size()), params)) f[t] += 1.0 / n;
  return f;
}

TEST(SamplingMath, ExpIsAccurate) {
  double worst = 0;
  for (float x = -86.9f; x <= 0.0f; x += 0.0037f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(sample_exp(x) - ref) / ref);
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(sample_exp(0.0f), 1.0f);
  EXPECT_EQ(sample_exp(-100.0f), 0.0f);
  EXPECT_EQ(sample_exp(-INFINITY), 0.0f);
}

TEST(SamplingMath, OrderKeyIsMonotone) {
  const float values[] = {-INFINITY, -3e38f, -1.0f, -1e-30f, -0.0f, 0.0f, 1e-30f, 1.0f, 3e38f, INFINITY};
  for (size_t i = 1; i < std::size(values); ++i) EXPECT_LE(float_order_key(values[i - 1]), float_order_key(values[i]));
  EXPECT_LT(float_order_key(-1.0f), float_order_key(1.0f));
}

TEST(CpuSampling, FiltersAndFrequencies) {
  auto b = make_cpu_backend(2);
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = .1 .2 .3 .4
  SamplingParams greedy;
  EXPECT_EQ(draw(*b, logits, 4, {greedy})[0], 3);
  SamplingParams plain;
  plain.temperature = 1.0f;
  plain.seed = 11;
  auto f = frequencies(*b, logits, plain, 40000);
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(f[t], 0.1 * (t + 1), 0.01) << "token " << t;
  // top-k 2, top-p 0.5 and min-p 0.6 all keep {2, 3}, in proportion 3 : 4.
  for (int which = 0; which < 3; ++which) {
    SamplingParams p = plain;
    if (which == 0) p.top_k = 2;
    if (which == 1) p.top_p = 0.5f;
    if (which == 2) p.min_p = 0.6f;
    f = frequencies(*b, logits, p, 40000);
    EXPECT_EQ(f[0] + f[1], 0.0) << "filter " << which;
    EXPECT_NEAR(f[2], 3.0 / 7.0, 0.01) << "filter " << which;
  }
  SamplingParams one = plain;
  one.top_k = 1;
  f = frequencies(*b, logits, one, 1000);
  EXPECT_NEAR(f[3], 1.0, 1e-9);
}

TEST(CpuSampling, ReproduciblePerSeedAndStep) {
  auto b = make_cpu_backend(2);
  std::vector<float> logits(5000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i)) * 3.0f;
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.95f;
  p.seed = 1234;
  p.step = 9;
  const int32_t first = draw(*b, logits, 5000, {p})[0];
  EXPECT_EQ(draw(*b, logits, 5000, {p, p, p})[2], first);
  std::map<int32_t, int> seen;
  for (uint64_t step = 0; step < 50; ++step) {
    p.step = step;
    ++seen[draw(*b, logits, 5000, {p})[0]];
  }
  EXPECT_GT(seen.size(), 10u);  // different steps draw different tokens
}

TEST(CpuSampling, TypicalKeepsTheMostTypicalMass) {
  auto b = make_cpu_backend(2);
  // p = .1 .2 .3 .4: entropy 1.2799; |-log p - H| = 1.023 .330 .076 .364, so by typicality 2, 1, 3, 0 with
  // cumulative mass .3 .5 .9 1 (transformers' TypicalLogitsWarper keeps through the first mass >= typical_p).
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 5;
  p.typical_p = 0.45f;
  auto f = frequencies(*b, logits, p, 40000);
  EXPECT_EQ(f[0] + f[3], 0.0);
  EXPECT_NEAR(f[1], 0.4, 0.01);
  p.typical_p = 0.6f;
  f = frequencies(*b, logits, p, 40000);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_NEAR(f[3], 0.4 / 0.9, 0.01);
  p.typical_p = 0.01f;  // always keeps the most typical token
  f = frequencies(*b, logits, p, 1000);
  EXPECT_NEAR(f[2], 1.0, 1e-9);
}

TEST(CpuSampling, PenaltiesFollowVllm) {
  auto b = make_cpu_backend(2);
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 3.0f, 0.5f,  2.0f, -2.0f, 1.0f, 3.0f, 0.5f};
  const std::vector<int32_t> row_start = {0, 3, 3};  // row 1 has no history
  const std::vector<int32_t> token = {0, 1, 3}, count = {0, 2, 1};
  std::vector<PenaltyParams> params(2);
  params[0].repetition = 2.0f;
  params[0].frequency = 0.5f;
  params[0].presence = 0.25f;
  params[1] = params[0];
  TokenCounts counts{2, row_start.data(), token.data(), count.data(), params.data()};
  b->apply_penalties(Tensor::make(logits.data(), DType::kF32, 2, 5), counts);
  // token 0: prompt only, 2 / 2; token 1: -2 * 2 - 0.5 * 2 - 0.25; token 3: 3 / 2 - 0.5 - 0.25.
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], -5.25f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f);
  EXPECT_FLOAT_EQ(logits[3], 0.75f);
  EXPECT_FLOAT_EQ(logits[4], 0.5f);
  const std::vector<float> untouched = {2.0f, -2.0f, 1.0f, 3.0f, 0.5f};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(logits[5 + i], untouched[i]);
}

TEST(CpuSampling, LogprobsAndAlternatives) {
  auto b = make_cpu_backend(2);
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f), std::log(4.0f)};
  const std::vector<int32_t> targets = {1};
  float lp = 0;
  std::vector<int32_t> ids(3);
  std::vector<float> top(3);
  b->logprobs(Tensor::make(const_cast<float*>(logits.data()), DType::kF32, 1, 5), targets.data(), 3, &lp,
              ids.data(), top.data());
  EXPECT_NEAR(lp, std::log(2.0 / 14.0), 1e-6);
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 4, 2}));  // ties to the lower id
  EXPECT_NEAR(top[0], std::log(4.0 / 14.0), 1e-6);
  EXPECT_NEAR(top[2], std::log(3.0 / 14.0), 1e-6);
}

}  // namespace
}  // namespace ls
