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

}  // namespace
}  // namespace ls
