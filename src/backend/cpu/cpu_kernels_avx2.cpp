// cpu_kernels_avx2.cpp: the CPU kernels with AVX2, FMA and F16C, for x86 CPUs without AVX-512. With 16 ymm
// registers a GEMM tile is at most 2 rows and walks the 64 panel columns as two halves of 32 (4 ymm each);
// the operation sequence per element is the one of cpu_kernels.h, as in every other implementation. Compiled
// with -mavx2 -mfma -mf16c; only cpu_kernels_dispatch.cpp calls in here, after checking the CPU.
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/cpu_kernels.h"

// Full unrolling of the small fixed loops over registers (at -O3, GCC 12 otherwise keeps a memory copy of
// register-array accumulators up to date inside the hot loops).
#define LS_UNROLL _Pragma("GCC unroll 16")

namespace ls::cpu {
namespace {

__m256i lane_mask(int64_t valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid < 0 ? 0 : valid > 8 ? 8 : valid)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int R>
void fma_row(__m256 (&acc)[R][4], const float* const (&x)[R], int64_t k, const __m256 (&w)[4]) {
  LS_UNROLL
  for (int r = 0; r < R; ++r) {
    const __m256 xb = _mm256_set1_ps(x[r][k]);
    LS_UNROLL
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_fmadd_ps(xb, w[j], acc[r][j]);
  }
}

template <WeightFormat F>
void load_row(const void* base, int64_t ldw, int64_t k, int64_t col0, __m256 (&w)[4]) {
  if constexpr (F == WeightFormat::kF32) {
    const float* p = static_cast<const float*>(base) + k * ldw + col0;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) w[j] = _mm256_loadu_ps(p + 8 * j);
  } else if constexpr (F == WeightFormat::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + k * ldw + col0;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) w[j] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8 * j)));
  } else {
    const int8_t* p = static_cast<const int8_t*>(base) + k * ldw + col0;
    LS_UNROLL
    for (int j = 0; j < 4; ++j)
      w[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * j))));
  }
}

template <int R>
void store_half(const GemmTile& t, int64_t col0, __m256 (&acc)[R][4]) {
  LS_UNROLL
  for (int j = 0; j < 4; ++j) {
    const int64_t c = col0 + 8 * j;
    if (c >= t.ncols) break;
    const __m256i m = lane_mask(t.ncols - c);
    const __m256 scale = t.scale ? _mm256_loadu_ps(t.scale + c) : _mm256_setzero_ps();
    const __m256 bias = t.bias ? _mm256_maskload_ps(t.bias + c, m) : _mm256_setzero_ps();
    LS_UNROLL
    for (int r = 0; r < R; ++r) {
      __m256 v = acc[r][j];
      if (t.scale) v = _mm256_mul_ps(v, scale);
      if (t.bias) v = _mm256_add_ps(v, bias);
      float* y = t.y + r * t.ldy + c;
      if (t.accumulate) v = _mm256_add_ps(_mm256_maskload_ps(y, m), v);
      _mm256_maskstore_ps(y, m, v);
    }
  }
}

template <int R, WeightFormat F>
void gemm_half(const GemmTile& t, int64_t col0) {
  __m256 acc[R][4];
  const float* x[R];
  LS_UNROLL
  for (int r = 0; r < R; ++r) {
    x[r] = t.x + r * t.ldx;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm256_setzero_ps();
  }
  if constexpr (F == WeightFormat::kBF16) {
    const uint16_t* w = static_cast<const uint16_t*>(t.w) + 2 * col0;
    const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
    int64_t k = 0;
    for (; k + 1 < t.k; k += 2) {
      const uint16_t* p = w + (k / 2) * 2 * t.ldw;
      __m256i raw[4];
      __m256 wk[4];
      LS_UNROLL
      for (int j = 0; j < 4; ++j) raw[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * j));
      LS_UNROLL
      for (int j = 0; j < 4; ++j) wk[j] = _mm256_castsi256_ps(_mm256_slli_epi32(raw[j], 16));
      fma_row<R>(acc, x, k, wk);
      LS_UNROLL
      for (int j = 0; j < 4; ++j) wk[j] = _mm256_castsi256_ps(_mm256_and_si256(raw[j], high));
      fma_row<R>(acc, x, k + 1, wk);
    }
    if (k < t.k) {
      const uint16_t* p = w + (k / 2) * 2 * t.ldw;
      __m256 wk[4];
      LS_UNROLL
      for (int j = 0; j < 4; ++j)
        wk[j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * j)), 16));
      fma_row<R>(acc, x, k, wk);
    }
  } else {
    for (int64_t k = 0; k < t.k; ++k) {
      __m256 wk[4];
      load_row<F>(t.w, t.ldw, k, col0, wk);
      fma_row<R>(acc, x, k, wk);
    }
  }
  store_half<R>(t, col0, acc);
}

template <WeightFormat F>
void gemm_rows(const GemmTile& t) {
  for (int64_t col0 = 0; col0 < t.ncols; col0 += 32) {
    if (t.rows == 1) {
      gemm_half<1, F>(t, col0);
    } else {
      gemm_half<2, F>(t, col0);
    }
  }
}

// The dot_rows tree of cpu_kernels.h for one element held as lanes 0-7 (lo) and 8-15 (hi).
float reduce(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// 8 weights from p as float32 (bf16 converted exactly); lanes past `valid` are zero.
__m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__m256 load8(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
__m256 load8(const float* p, int64_t valid) { return _mm256_maskload_ps(p, lane_mask(valid)); }
__m256 load8(const uint16_t* p, int64_t valid) {
  uint16_t tmp[8] = {};
  for (int64_t i = 0; i < valid && i < 8; ++i) tmp[i] = p[i];
  return load8(tmp);
}

// Lane-form dots of x with NB rows: full chunk c of row j at full + c * step + j * row, the k % 16 tail values
// of row j at tail + j * tail_row (row-major rows and dot_rows_blocked's layout both fit).
template <int NB, class W>
void dot_block(const float* x, const W* full, int64_t step, int64_t row, const W* tail, int64_t tail_row, int64_t k,
               float* out) {
  __m256 lo[NB], hi[NB];
  LS_UNROLL
  for (int j = 0; j < NB; ++j) lo[j] = hi[j] = _mm256_setzero_ps();
  int64_t i = 0;
  for (const W* chunk = full; i + 16 <= k; i += 16, chunk += step) {
    const __m256 xl = _mm256_loadu_ps(x + i), xh = _mm256_loadu_ps(x + i + 8);
    LS_UNROLL
    for (int j = 0; j < NB; ++j) {
      lo[j] = _mm256_fmadd_ps(xl, load8(chunk + j * row), lo[j]);
      hi[j] = _mm256_fmadd_ps(xh, load8(chunk + j * row + 8), hi[j]);
    }
  }
  if (i < k) {
    const __m256i ml = lane_mask(k - i), mh = lane_mask(k - i - 8);
    const __m256 xl = _mm256_maskload_ps(x + i, ml), xh = _mm256_maskload_ps(x + i + 8, mh);
    LS_UNROLL
    for (int j = 0; j < NB; ++j) {
      lo[j] = _mm256_fmadd_ps(xl, load8(tail + j * tail_row, k - i), lo[j]);
      hi[j] = _mm256_fmadd_ps(xh, load8(tail + j * tail_row + 8, k - i - 8), hi[j]);
    }
  }
  LS_UNROLL
  for (int j = 0; j < NB; ++j) out[j] = reduce(lo[j], hi[j]);
}

// Rows [n, n + nb) of a dot_rows call (nb <= 4), given their chunk addressing.
template <class W>
void dot_rows4(const float* x, const W* full, int64_t step, int64_t row, const W* tail, int64_t tail_row, int64_t k,
               int64_t nb, float* d) {
  switch (nb) {
    case 1: return dot_block<1>(x, full, step, row, tail, tail_row, k, d);
    case 2: return dot_block<2>(x, full, step, row, tail, tail_row, k, d);
    case 3: return dot_block<3>(x, full, step, row, tail, tail_row, k, d);
    default: return dot_block<4>(x, full, step, row, tail, tail_row, k, d);
  }
}

template <class W>
void dot_rows(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t ldw, int64_t n_rows, int64_t k, float* y,
              int64_t ldy, bool accumulate) {
  const int64_t full = k / 16 * 16;
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < n_rows; n += 4) {
      float d[4];
      const int64_t nb = n_rows - n < 4 ? n_rows - n : 4;
      dot_rows4(x + m * ldx, w + n * ldw, 16, ldw, w + n * ldw + full, ldw, k, nb, d);
      float* out = y + m * ldy + n;
      for (int64_t j = 0; j < nb; ++j) out[j] = accumulate ? out[j] + d[j] : d[j];
    }
  }
}

template <class W>
void dot_rows_blocked(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t n_rows, int64_t k, float* y,
                      int64_t ldy) {
  const W* tail = w + (k / 16) * 16 * n_rows;
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < n_rows; n += 4) {
      const int64_t nb = n_rows - n < 4 ? n_rows - n : 4;
      dot_rows4(x + m * ldx, w + 16 * n, 16 * n_rows, 16, tail + n * (k % 16), k % 16, k, nb, y + m * ldy + n);
    }
  }
}

// accumulate_rows for H heads and 16 columns from the start of v and y (masks m): H x 2 FMA chains.
template <int H>
void accumulate_block(const float* weights, int64_t ldw, const float* v, int64_t ldv, int64_t count, const __m256i (&m)[2],
                      float* y, int64_t ldy) {
  __m256 a[H][2];
  LS_UNROLL
  for (int h = 0; h < H; ++h)
    LS_UNROLL
    for (int j = 0; j < 2; ++j) a[h][j] = _mm256_maskload_ps(y + h * ldy + 8 * j, m[j]);
  for (int64_t r = 0; r < count; ++r) {
    const __m256 v0 = _mm256_maskload_ps(v + r * ldv, m[0]), v1 = _mm256_maskload_ps(v + r * ldv + 8, m[1]);
    LS_UNROLL
    for (int h = 0; h < H; ++h) {
      const __m256 wr = _mm256_set1_ps(weights[h * ldw + r]);
      a[h][0] = _mm256_fmadd_ps(wr, v0, a[h][0]);
      a[h][1] = _mm256_fmadd_ps(wr, v1, a[h][1]);
    }
  }
  LS_UNROLL
  for (int h = 0; h < H; ++h)
    LS_UNROLL
    for (int j = 0; j < 2; ++j) _mm256_maskstore_ps(y + h * ldy + 8 * j, m[j], a[h][j]);
}

void accumulate_rows(const float* weights, int64_t ldw, int64_t heads, const float* v, int64_t ldv, int64_t count,
                     int64_t n, float* y, int64_t ldy) {
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i m[2] = {lane_mask(n - i), lane_mask(n - i - 8)};
    for (int64_t h = 0; h < heads; h += 5) {
      const float* wh = weights + h * ldw;
      float* yh = y + h * ldy + i;
      switch (heads - h < 5 ? heads - h : 5) {
        case 1: accumulate_block<1>(wh, ldw, v + i, ldv, count, m, yh, ldy); break;
        case 2: accumulate_block<2>(wh, ldw, v + i, ldv, count, m, yh, ldy); break;
        case 3: accumulate_block<3>(wh, ldw, v + i, ldv, count, m, yh, ldy); break;
        case 4: accumulate_block<4>(wh, ldw, v + i, ldv, count, m, yh, ldy); break;
        default: accumulate_block<5>(wh, ldw, v + i, ldv, count, m, yh, ldy); break;
      }
    }
  }
}

__m256 exp_poly(__m256 v) {
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), v);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpC[0]);
  LS_UNROLL
  for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpC[i]));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

float softmax_exp(float* x, int64_t n, float scale) {
  __m256 mx = _mm256_set1_ps(x[0]);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    mx = _mm256_blendv_ps(mx, _mm256_max_ps(mx, _mm256_maskload_ps(x + i, m)), _mm256_castsi256_ps(m));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const __m256 sc = _mm256_set1_ps(scale);
  const __m256 shift = _mm256_mul_ps(_mm256_set1_ps(_mm_cvtss_f32(m4)), sc);
  __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    const __m256 e = exp_poly(_mm256_sub_ps(_mm256_mul_ps(_mm256_maskload_ps(x + i, m), sc), shift));
    _mm256_maskstore_ps(x + i, m, e);
    const int h = static_cast<int>((i / 8) & 1);  // lanes 0-7 or 8-15 of the 16-lane sum
    a[h] = _mm256_add_ps(a[h], _mm256_and_ps(e, _mm256_castsi256_ps(m)));
  }
  return reduce(a[0], a[1]);
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i m = lane_mask(n - i);
    const __m256 gv = _mm256_maskload_ps(g + i, m);
    const __m256 d = _mm256_add_ps(one, exp_poly(_mm256_sub_ps(zero, gv)));
    _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(_mm256_div_ps(gv, d), _mm256_maskload_ps(u + i, m)));
  }
}

}  // namespace

namespace detail {

const CpuKernels& avx2_kernel_table() {
  static const CpuKernels k = [] {
    CpuKernels t;
    t.isa = "avx2";
    t.max_tile_rows = 2;
    t.gemm[static_cast<int>(WeightFormat::kF32)] = gemm_rows<WeightFormat::kF32>;
    t.gemm[static_cast<int>(WeightFormat::kBF16)] = gemm_rows<WeightFormat::kBF16>;
    t.gemm[static_cast<int>(WeightFormat::kF16)] = gemm_rows<WeightFormat::kF16>;
    t.gemm[static_cast<int>(WeightFormat::kI8)] = gemm_rows<WeightFormat::kI8>;
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

}  // namespace detail
}  // namespace ls::cpu
