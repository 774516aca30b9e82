// sampling_math.h: the arithmetic of Backend::sample that both backends must carry out bit for bit, so the CPU
// and the GPU pick the same token from the same logits and the same seed. Only IEEE-exact operations are used
// (add, multiply, divide, explicit fma, rint), never a library exp whose last bit differs between glibc and
// CUDA; probabilities become fixed-point integers so that sums do not depend on the order of addition.
//
// For a row with temperature T > 0: s_i = logit_i / T, m = max s, e_i = sample_exp(s_i - m) in (0, 1],
// w_i = sample_weight(e_i) (e_i in units of 2^-32). top-k keeps keys >= the k-th largest key, top-p keeps the
// keys >= the largest key K with sum(w of kept keys >= K) >= top_p * W_k, min-p keeps e_i >= min_p. The draw
// typical-p keeps the most typical keys: with d_i = s_i - m quantized to q_i (typical_q), the kept set's
// entropy offset is the weighted mean D = S / V of q (S = sum w'_i q_i, V = sum w'_i, w' = w >> 8), a key's
// distance from typical is |D - q_i| (-log p_i - H = D - d_i exactly, so no logarithm is needed), and the
// filter keeps keys whose typical_key (the distance scaled by V, inverted) is >= the largest key K with
// sum(w of kept keys >= K) >= typical_p * W. The draw r = floor(u * W) (u = uniform_at(seed, step)) picks the
// first kept index, in vocabulary order, whose inclusive prefix sum of w exceeds r.
//
// Penalties (Backend::apply_penalties) rewrite a logit by penalized_logit with single IEEE operations and no
// fused multiply-add, so both backends produce the same logits from the same inputs.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/random_fill.h"
#include "backend/sampling_params.h"

namespace ls {

// An order-preserving unsigned key of a float: a < b  <=>  key(a) < key(b) (for non-NaN values).
LS_HOST_DEVICE inline uint32_t float_order_key(float f) {
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(f);
#else
  std::memcpy(&u, &f, 4);
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// exp(x) for x <= 0, to ~2 ulp, from basic operations only; 0 below -87 (its fixed-point weight is 0 anyway).
LS_HOST_DEVICE inline float sample_exp(float x) {
  if (!(x > -87.0f)) return 0.0f;
  const float n = rintf(x * 1.44269504088896341f);
  float r = fmaf(n, -0.693145751953125f, x);  // Cody-Waite: ln2 split in a high part exact in float
  r = fmaf(n, -1.428606765330187045e-06f, r);
  float p = 1.98412698e-4f;                   // 1/5040 .. 1: Taylor to degree 7, |r| <= ln2/2
  p = fmaf(p, r, 1.38888889e-3f);
  p = fmaf(p, r, 8.33333333e-3f);
  p = fmaf(p, r, 4.16666667e-2f);
  p = fmaf(p, r, 1.66666667e-1f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  const int e = static_cast<int>(n) + 127;  // n in [-126, 0]: a normal power of two
  uint32_t bits = static_cast<uint32_t>(e) << 23;
  float scale;
#if defined(__CUDA_ARCH__)
  scale = __uint_as_float(bits);
#else
  std::memcpy(&scale, &bits, 4);
#endif
  return p * scale;
}

// e in [0, 1] as a fixed-point weight in units of 2^-32 (exact scaling, then truncation).
LS_HOST_DEVICE inline uint64_t sample_weight(float e) { return static_cast<uint64_t>(e * 4294967296.0f); }

// The 24-bit uniform of a request's draw, as an exact fraction u24 / 2^24.
LS_HOST_DEVICE inline uint32_t sample_uniform24(uint64_t seed, uint64_t step) {
  return static_cast<uint32_t>(uniform_at(seed, step, 0.0f, 1.0f) * 16777216.0f);
}

// The fixed-point target of a draw: floor(u * total) computed exactly (u24 < 2^24, total < 2^40 in practice).
LS_HOST_DEVICE inline uint64_t sample_target(uint32_t u24, uint64_t total) {
  const uint64_t hi = (total >> 24) * u24;
  const uint64_t lo = ((total & 0xFFFFFFull) * u24) >> 24;
  return hi + lo;
}

// The top-p mass a row must keep: ceil(top_p * total) in fixed point, computed in double (exact for total < 2^53).
LS_HOST_DEVICE inline uint64_t top_p_target(float top_p, uint64_t total) {
  const double t = static_cast<double>(top_p) * static_cast<double>(total);
  uint64_t r = static_cast<uint64_t>(t);
  if (static_cast<double>(r) < t) ++r;
  return r < 1 ? 1 : r;
}

// The quantized log-probability offset of a key for typical-p: d = s - m (<= 0) in units of 2^-12, clamped at
// -87 like sample_exp (|q| < 2^19). Exact: scaling by a power of two, then rounding.
LS_HOST_DEVICE inline int64_t typical_q(float d) {
  return static_cast<int64_t>(rintf((d > -87.0f ? d : -87.0f) * 4096.0f));
}

// The entropy weight of a key: its fixed-point weight in units of 2^-24 (< 2^24 + 1), so that sums of
// weight * q over a 2^18-entry vocabulary stay within int64.
LS_HOST_DEVICE inline int64_t typical_weight(uint64_t w) { return static_cast<int64_t>(w >> 8); }

// The typical-p key of a token: larger is more typical. s_q = sum of typical_weight * typical_q over the kept
// keys, v = sum of typical_weight over them; the distance |s_q - q v| is V times |D - q|.
LS_HOST_DEVICE inline uint64_t typical_key(int64_t q, int64_t s_q, int64_t v) {
  const int64_t diff = s_q - q * v;
  const uint64_t distance = diff < 0 ? static_cast<uint64_t>(-diff) : static_cast<uint64_t>(diff);
  return ~distance;
}

// The logit of a token after the penalties of its request: seen (in the prompt or output) -> repetition
// penalty (positive logits divided, negative multiplied), then minus frequency * count and presence * (count > 0).
LS_HOST_DEVICE inline float penalized_logit(float x, int32_t output_count, const PenaltyParams& p) {
#if defined(__CUDA_ARCH__)
  if (p.repetition != 1.0f) x = x > 0.0f ? __fdiv_rn(x, p.repetition) : __fmul_rn(x, p.repetition);
  const float count = static_cast<float>(output_count);
  x = __fsub_rn(x, __fmul_rn(p.frequency, count));
  if (output_count > 0) x = __fsub_rn(x, p.presence);
#else
  if (p.repetition != 1.0f) x = x > 0.0f ? x / p.repetition : x * p.repetition;
  const float count = static_cast<float>(output_count);
  x = x - p.frequency * count;
  if (output_count > 0) x = x - p.presence;
#endif
  return x;
}

}  // namespace ls
