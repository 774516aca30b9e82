// cpu_kernels_portable.cpp: the CPU kernels in plain C++, one element at a time, for CPUs without AVX2. They
// spell out the operation sequences of cpu_kernels.h literally (std::fma is the correctly rounded fused
// multiply-add), which makes them the definition the vector kernels are tested against bit for bit.
#include <bit>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"

namespace ls::cpu {
namespace {

template <WeightFormat F>
float weight_at(const void* w, int64_t ldw, int64_t k, int64_t c) {
  if constexpr (F == WeightFormat::kF32) {
    return static_cast<const float*>(w)[k * ldw + c];
  } else if constexpr (F == WeightFormat::kF16) {
    return f16_to_float(static_cast<const uint16_t*>(w)[k * ldw + c]);
  } else if constexpr (F == WeightFormat::kBF16) {
    return bf16_to_float(static_cast<const uint16_t*>(w)[(k / 2) * 2 * ldw + 2 * c + (k & 1)]);
  } else {
    return static_cast<float>(static_cast<const int8_t*>(w)[k * ldw + c]);
  }
}

template <WeightFormat F>
void gemm(const GemmTile& t) {
  for (int32_t r = 0; r < t.rows; ++r) {
    const float* x = t.x + r * t.ldx;
    float* y = t.y + r * t.ldy;
    for (int32_t c = 0; c < t.ncols; ++c) {
      float a = 0.0f;
      for (int64_t k = 0; k < t.k; ++k) a = std::fma(x[k], weight_at<F>(t.w, t.ldw, k, c), a);
      if (t.scale) a = a * t.scale[c];
      if (t.bias) a = a + t.bias[c];
      y[c] = t.accumulate ? y[c] + a : a;
    }
  }
}

float tree16(const float* a) {
  float s8[8], s4[4], s2[2];
  for (int l = 0; l < 8; ++l) s8[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) s4[l] = s8[l] + s8[l + 4];
  for (int l = 0; l < 2; ++l) s2[l] = s4[l] + s4[l + 2];
  return s2[0] + s2[1];
}

float as_float(float v) { return v; }
float as_float(uint16_t v) { return bf16_to_float(v); }

// Element (n, i) of the w operand of dot_rows (row-major, ldw) or of dot_rows_blocked (chunk-interleaved).
template <class W>
float row_major_at(const W* w, int64_t ldw, int64_t, int64_t, int64_t n, int64_t i) {
  return as_float(w[n * ldw + i]);
}
template <class W>
float blocked_at(const W* w, int64_t, int64_t n_rows, int64_t k, int64_t n, int64_t i) {
  const int64_t full = k / 16;
  return as_float(i / 16 < full ? w[(i / 16) * 16 * n_rows + 16 * n + i % 16] : w[full * 16 * n_rows + n * (k % 16) + i % 16]);
}

template <class W, float (*At)(const W*, int64_t, int64_t, int64_t, int64_t, int64_t)>
void dot_rows_impl(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t ldw, int64_t n_rows, int64_t k,
                   float* y, int64_t ldy, bool accumulate) {
  const int64_t padded = (k + 15) / 16 * 16;
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < n_rows; ++n) {
      float a[16] = {};
      for (int64_t i = 0; i < padded; ++i) {
        const bool in = i < k;
        a[i % 16] = std::fma(in ? x[m * ldx + i] : 0.0f, in ? At(w, ldw, n_rows, k, n, i) : 0.0f, a[i % 16]);
      }
      const float d = tree16(a);
      float& out = y[m * ldy + n];
      out = accumulate ? out + d : d;
    }
  }
}

template <class W>
void dot_rows(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t ldw, int64_t n_rows, int64_t k, float* y,
              int64_t ldy, bool accumulate) {
  dot_rows_impl<W, row_major_at<W>>(x, ldx, rows, w, ldw, n_rows, k, y, ldy, accumulate);
}

template <class W>
void dot_rows_blocked(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t n_rows, int64_t k, float* y,
                      int64_t ldy) {
  dot_rows_impl<W, blocked_at<W>>(x, ldx, rows, w, 0, n_rows, k, y, ldy, false);
}

void accumulate_rows(const float* weights, int64_t ldw, int64_t heads, const float* v, int64_t ldv, int64_t count,
                     int64_t n, float* y, int64_t ldy) {
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < n; ++i) {
      float a = y[h * ldy + i];
      for (int64_t r = 0; r < count; ++r) a = std::fma(weights[h * ldw + r], v[r * ldv + i], a);
      y[h * ldy + i] = a;
    }
}

float exp_poly(float v) {
  v = std::fmin(std::fmax(v, -87.0f), 88.0f);
  const float n = std::nearbyint(v * kLog2e);
  float r = std::fma(n, -kLn2Hi, v);
  r = std::fma(n, -kLn2Lo, r);
  float p = kExpC[0];
  for (int i = 1; i < 8; ++i) p = std::fma(p, r, kExpC[i]);
  const float scale = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return p * scale;
}

float softmax_exp(float* x, int64_t n, float scale) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = std::fmax(m, x[i]);
  const float shift = m * scale;
  float a[16] = {};
  for (int64_t i = 0; i < n; ++i) {
    x[i] = exp_poly(x[i] * scale - shift);
    a[i % 16] = a[i % 16] + x[i];
  }
  return tree16(a);
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = (g[i] / (1.0f + exp_poly(-g[i]))) * u[i];
}

}  // namespace

const CpuKernels& portable_kernels() {
  static const CpuKernels k = [] {
    CpuKernels t;
    t.isa = "portable";
    t.max_tile_rows = 1;
    t.gemm[static_cast<int>(WeightFormat::kF32)] = gemm<WeightFormat::kF32>;
    t.gemm[static_cast<int>(WeightFormat::kBF16)] = gemm<WeightFormat::kBF16>;
    t.gemm[static_cast<int>(WeightFormat::kF16)] = gemm<WeightFormat::kF16>;
    t.gemm[static_cast<int>(WeightFormat::kI8)] = gemm<WeightFormat::kI8>;
    t.dot_rows = dot_rows<float>;
    t.dot_rows_bf16 = dot_rows<uint16_t>;
    t.dot_rows_blocked = dot_rows_blocked<float>;
    t.dot_rows_blocked_bf16 = dot_rows_blocked<uint16_t>;
    t.accumulate_rows = accumulate_rows;
    t.softmax_exp = softmax_exp;
    t.silu_mul = silu_mul;
    return t;
  }();
  return k;
}

}  // namespace ls::cpu
