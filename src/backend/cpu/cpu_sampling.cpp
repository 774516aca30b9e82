// cpu_sampling.cpp: the sampling ops on the CPU (sample, apply_penalties, logprobs), the twins of the CUDA
// sampling kernels. Sampling and penalties follow backend/sampling_math.h exactly (temperature, top-k, top-p,
// min-p, typical-p, then a fixed-point inverse-CDF draw in vocabulary order), so both backends pick the same
// token from the same float32 logits and the same seed; log-probabilities are computed in double here.
#include <algorithm>
#include <cmath>
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
  uint64_t key;
  uint64_t weight;
};

// The largest key K with sum(weight of items whose key >= K) >= target (target <= total weight).
uint64_t threshold_key(std::vector<KeyWeight> items, uint64_t target) {
  std::sort(items.begin(), items.end(), [](const KeyWeight& a, const KeyWeight& b) { return a.key > b.key; });
  uint64_t sum = 0;
  for (const KeyWeight& it : items) {
    sum += it.weight;
    if (sum >= target) return it.key;
  }
  return items.empty() ? 0 : items.back().key;
}

// Keeps, among the kept entries, those whose key is >= the threshold for `fraction` of their total weight.
void keep_mass(const std::vector<uint64_t>& keys, const std::vector<uint64_t>& w, float fraction,
               std::vector<uint8_t>& keep) {
  std::vector<KeyWeight> items;
  uint64_t total = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!keep[i]) continue;
    items.push_back({keys[i], w[i]});
    total += w[i];
  }
  const uint64_t k = threshold_key(std::move(items), top_p_target(fraction, total));
  for (size_t i = 0; i < keys.size(); ++i) keep[i] = keep[i] && keys[i] >= k;
}

}  // namespace

int32_t sample_row_host(const float* row, int64_t n, const SamplingParams& p) {
  if (!(p.temperature > 0.0f)) return first_argmax(row, n);
  std::vector<float> s(static_cast<size_t>(n));
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    s[i] = row[i] / p.temperature;
    m = std::max(m, s[i]);
  }
  std::vector<float> e(s.size());
  std::vector<uint64_t> w(s.size()), keys(s.size());
  std::vector<uint8_t> keep(s.size(), 1);
  for (int64_t i = 0; i < n; ++i) {
    e[i] = sample_exp(s[i] - m);
    w[i] = sample_weight(e[i]);
    keys[i] = float_order_key(s[i]);
  }
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<KeyWeight> items;
    for (int64_t i = 0; i < n; ++i) items.push_back({keys[i], 1});
    const uint64_t k_key = threshold_key(std::move(items), static_cast<uint64_t>(p.top_k));
    for (int64_t i = 0; i < n; ++i) keep[i] = keys[i] >= k_key;
  }
  if (p.top_p < 1.0f) keep_mass(keys, w, p.top_p, keep);
  if (p.min_p > 0.0f)
    for (int64_t i = 0; i < n; ++i) keep[i] = keep[i] && e[i] >= p.min_p;
  if (p.typical_p < 1.0f) {
    int64_t s_q = 0, v = 0;
    std::vector<int64_t> q(s.size());
    for (int64_t i = 0; i < n; ++i) {
      q[i] = typical_q(s[i] - m);
      if (!keep[i]) continue;
      s_q += typical_weight(w[i]) * q[i];
      v += typical_weight(w[i]);
    }
    std::vector<uint64_t> tkeys(s.size());
    for (int64_t i = 0; i < n; ++i) tkeys[i] = typical_key(q[i], s_q, v);
    keep_mass(tkeys, w, p.typical_p, keep);
  }
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

void apply_penalties_host(float* logits, int64_t ld, int64_t cols, const TokenCounts& counts) {
  for (int32_t r = 0; r < counts.num_rows; ++r) {
    const PenaltyParams& p = counts.params[r];
    if (!p.active()) continue;
    float* row = logits + r * ld;
    for (int32_t e = counts.row_start[r]; e < counts.row_start[r + 1]; ++e) {
      const int32_t t = counts.token[e];
      if (t >= 0 && t < cols) row[t] = penalized_logit(row[t], counts.output_count[e], p);
    }
  }
}

void logprobs_row_host(const float* row, int64_t n, int32_t target, int32_t top_n, float* logprob, int32_t* top_ids,
                       float* top_logprobs) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, row[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - m);
  const double lse = m + std::log(sum);
  *logprob = target >= 0 && target < n ? static_cast<float>(row[target] - lse) : -INFINITY;
  if (top_n <= 0) return;
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  const auto k = std::min<int64_t>(top_n, n);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [row](int32_t a, int32_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  });
  for (int64_t i = 0; i < top_n; ++i) {
    top_ids[i] = i < k ? order[i] : -1;
    top_logprobs[i] = i < k ? static_cast<float>(row[order[i]] - lse) : -INFINITY;
  }
}

void CpuBackend::sample(Tensor logits, const SamplingParams* params, int32_t* tokens) {
  LS_CHECK(logits.dtype == DType::kF32) << "cpu backend: sample input must be float32";
  pool_.parallel_for(logits.rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      tokens[r] = sample_row_host(logits.ptr<float>() + r * logits.ld, logits.cols, params[r]);
  });
}

void CpuBackend::apply_penalties(Tensor logits, const TokenCounts& counts) {
  LS_CHECK(logits.dtype == DType::kF32 && counts.num_rows == logits.rows) << "cpu backend: apply_penalties shape";
  apply_penalties_host(logits.ptr<float>(), logits.ld, logits.cols, counts);
}

void CpuBackend::logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                          float* top_logprobs) {
  LS_CHECK(logits.dtype == DType::kF32) << "cpu backend: logprobs input must be float32";
  LS_CHECK(top_n >= 0 && top_n <= kMaxTopLogprobs) << "cpu backend: top_n out of range";
  pool_.parallel_for(logits.rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      logprobs_row_host(logits.ptr<float>() + r * logits.ld, logits.cols, targets[r], top_n, logprob + r,
                        top_ids + r * top_n, top_logprobs + r * top_n);
  });
}

}  // namespace ls
