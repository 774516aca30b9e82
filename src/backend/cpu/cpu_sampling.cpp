// cpu_sampling.cpp: Backend::sample on the CPU, the twin of the CUDA sampling kernel. Both follow
// backend/sampling_math.h exactly (temperature, top-k, top-p, min-p, then a fixed-point inverse-CDF draw in
// vocabulary order), so both pick the same token from the same float32 logits and the same seed.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/sampling_math.h"

namespace ls {
namespace {

int32_t first_argmax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return static_cast<int32_t>(best);
}

struct KeyWeight {
  uint32_t key;
  uint64_t weight;
};

// The largest key K with sum(weight of items whose key >= K) >= target (target <= total weight).
uint32_t threshold_key(std::vector<KeyWeight> items, uint64_t target) {
  std::sort(items.begin(), items.end(), [](const KeyWeight& a, const KeyWeight& b) { return a.key > b.key; });
  uint64_t sum = 0;
  for (const KeyWeight& it : items) {
    sum += it.weight;
    if (sum >= target) return it.key;
  }
  return items.empty() ? 0 : items.back().key;
}

int32_t sample_row(const float* row, int64_t n, const SamplingParams& p) {
  if (!(p.temperature > 0.0f)) return first_argmax(row, n);
  std::vector<float> s(static_cast<size_t>(n));
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    s[i] = row[i] / p.temperature;
    m = std::max(m, s[i]);
  }
  std::vector<float> e(s.size());
  std::vector<uint64_t> w(s.size());
  std::vector<uint8_t> keep(s.size(), 1);
  for (int64_t i = 0; i < n; ++i) {
    e[i] = sample_exp(s[i] - m);
    w[i] = sample_weight(e[i]);
  }
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<KeyWeight> items;
    for (int64_t i = 0; i < n; ++i) items.push_back({float_order_key(s[i]), 1});
    const uint32_t k_key = threshold_key(std::move(items), static_cast<uint64_t>(p.top_k));
    for (int64_t i = 0; i < n; ++i) keep[i] = float_order_key(s[i]) >= k_key;
  }
  if (p.top_p < 1.0f) {
    std::vector<KeyWeight> items;
    uint64_t total = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!keep[i]) continue;
      items.push_back({float_order_key(s[i]), w[i]});
      total += w[i];
    }
    const uint32_t p_key = threshold_key(std::move(items), top_p_target(p.top_p, total));
    for (int64_t i = 0; i < n; ++i) keep[i] = keep[i] && float_order_key(s[i]) >= p_key;
  }
  if (p.min_p > 0.0f)
    for (int64_t i = 0; i < n; ++i) keep[i] = keep[i] && e[i] >= p.min_p;
  uint64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += keep[i] ? w[i] : 0;
  if (total == 0) return first_argmax(row, n);  // min_p > 1 keeps nothing
  const uint64_t target = sample_target(sample_uniform24(p.seed, p.step), total);
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += keep[i] ? w[i] : 0;
    if (sum > target) return static_cast<int32_t>(i);
  }
  return first_argmax(row, n);  // unreachable: target < total
}

}  // namespace

void CpuBackend::sample(Tensor logits, const SamplingParams* params, int32_t* tokens) {
  LS_CHECK(logits.dtype == DType::kF32) << "cpu backend: sample input must be float32";
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r = 0; r < logits.rows; ++r) tokens[r] = sample_row(logits.ptr<float>() + r * logits.ld, logits.cols, params[r]);
}

}  // namespace ls
