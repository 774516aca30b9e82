// cpu_kernels_avx512.cpp: the CPU kernels with AVX-512 (F, BW, VL, DQ), the path of this project's machines.
// GEMM tiles hold rows x 64 outputs in up to 24 zmm accumulators (one column vector per 16 outputs), stream one
// packed weight row of 64 values per k, convert it in registers (bf16: shift / mask of a 32-bit lane holding a
// k pair; fp16: vcvtph2ps; int8: sign-extend and convert) and issue rows x 4 FMAs with the broadcast x[r][k].
// Compiled with -mavx512*; only cpu_kernels_dispatch.cpp calls in here, after checking the CPU. Nothing here
// is inline or a template with external linkage, so no AVX-512 code can leak into other translation units.
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/cpu_kernels.h"

// Full unrolling of the small fixed loops over registers (at -O3, GCC 12 otherwise keeps a memory copy of
// register-array accumulators up to date inside the hot loops).
#define LS_UNROLL _Pragma("GCC unroll 16")

namespace ls::cpu {
namespace {

__m512 load_bias(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }

__mmask16 col_mask(int32_t ncols, int j) {
  const int valid = ncols - 16 * j;
  if (valid >= 16) return 0xFFFF;
  if (valid <= 0) return 0;
  return static_cast<__mmask16>((1u << valid) - 1u);
}

template <int R>
void store_tile(const GemmTile& t, __m512 (&acc)[R][4]) {
  LS_UNROLL
  for (int j = 0; j < 4; ++j) {
    const __mmask16 m = col_mask(t.ncols, j);
    if (!m) continue;
    const __m512 scale = t.scale ? _mm512_loadu_ps(t.scale + 16 * j) : _mm512_setzero_ps();
    const __m512 bias = t.bias ? load_bias(t.bias + 16 * j, m) : _mm512_setzero_ps();
    LS_UNROLL
    for (int r = 0; r < R; ++r) {
      __m512 v = acc[r][j];
      if (t.scale) v = _mm512_mul_ps(v, scale);
      if (t.bias) v = _mm512_add_ps(v, bias);
      float* y = t.y + r * t.ldy + 16 * j;
      if (t.accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), v);
      _mm512_mask_storeu_ps(y, m, v);
    }
  }
}

template <int R>
void fma_row(__m512 (&acc)[R][4], const float* const (&x)[R], int64_t k, const __m512 (&w)[4]) {
  LS_UNROLL
  for (int r = 0; r < R; ++r) {
    const __m512 xb = _mm512_set1_ps(x[r][k]);
    LS_UNROLL
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_fmadd_ps(xb, w[j], acc[r][j]);
  }
}

template <WeightFormat F>
void load_row(const void* base, int64_t ldw, int64_t k, __m512 (&w)[4]) {
  if constexpr (F == WeightFormat::kF32) {
    const float* p = static_cast<const float*>(base) + k * ldw;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) w[j] = _mm512_loadu_ps(p + 16 * j);
  } else if constexpr (F == WeightFormat::kF16) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + k * ldw;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) w[j] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * j)));
  } else {
    const int8_t* p = static_cast<const int8_t*>(base) + k * ldw;
    LS_UNROLL
    for (int j = 0; j < 4; ++j)
      w[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j))));
  }
}

template <int R, WeightFormat F>
void gemm(const GemmTile& t) {
  __m512 acc[R][4];
  const float* x[R];
  LS_UNROLL
  for (int r = 0; r < R; ++r) {
    x[r] = t.x + r * t.ldx;
    LS_UNROLL
    for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  if constexpr (F == WeightFormat::kBF16) {
    const uint16_t* w = static_cast<const uint16_t*>(t.w);
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    int64_t k = 0;
    for (; k + 1 < t.k; k += 2) {
      const uint16_t* p = w + (k / 2) * 2 * t.ldw;
      __m512i raw[4];
      __m512 wk[4];
      LS_UNROLL
      for (int j = 0; j < 4; ++j) raw[j] = _mm512_loadu_si512(p + 32 * j);
      LS_UNROLL
      for (int j = 0; j < 4; ++j) wk[j] = _mm512_castsi512_ps(_mm512_slli_epi32(raw[j], 16));
      fma_row<R>(acc, x, k, wk);
      LS_UNROLL
      for (int j = 0; j < 4; ++j) wk[j] = _mm512_castsi512_ps(_mm512_and_si512(raw[j], high));
      fma_row<R>(acc, x, k + 1, wk);
    }
    if (k < t.k) {
      const uint16_t* p = w + (k / 2) * 2 * t.ldw;
      __m512 wk[4];
      LS_UNROLL
      for (int j = 0; j < 4; ++j) wk[j] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512(p + 32 * j), 16));
      fma_row<R>(acc, x, k, wk);
    }
  } else {
    for (int64_t k = 0; k < t.k; ++k) {
      __m512 wk[4];
      load_row<F>(t.w, t.ldw, k, wk);
      fma_row<R>(acc, x, k, wk);
    }
  }
  store_tile<R>(t, acc);
}

template <WeightFormat F>
void gemm_rows(const GemmTile& t) {
  switch (t.rows) {
    case 1: return gemm<1, F>(t);
    case 2: return gemm<2, F>(t);
    case 3: return gemm<3, F>(t);
    case 4: return gemm<4, F>(t);
    case 5: return gemm<5, F>(t);
    default: return gemm<6, F>(t);
  }
}

// The dot_rows tree of cpu_kernels.h for 16 accumulators at once: lane j of the result is accumulator j's sum.
inline __attribute__((always_inline)) __m512 reduce16(const __m512 (&a)[16]) {
  __m512 u[8], w[4], r[2];
  LS_UNROLL
  for (int i = 0; i < 8; ++i) {  // s8: quarters 0, 1 of a[2i] plus quarters 2, 3; same for a[2i+1]
    const __m512 lo = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0));
    const __m512 hi = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2));
    u[i] = _mm512_add_ps(lo, hi);
  }
  LS_UNROLL
  for (int i = 0; i < 4; ++i) {  // s4: quarter q of w[i] holds accumulator 4i + q
    const __m512 lo = _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 hi = _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1));
    w[i] = _mm512_add_ps(lo, hi);
  }
  LS_UNROLL
  for (int i = 0; i < 2; ++i) {  // s2: per quarter [w_even s2[0], s2[1], w_odd s2[0], s2[1]]
    const __m512d a0 = _mm512_castps_pd(w[2 * i]), a1 = _mm512_castps_pd(w[2 * i + 1]);
    r[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a0, a1)), _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a1)));
  }
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
  // Lane 4q + i of s holds accumulator 4i + q.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(order, s);
}

// 16 weights from p as float32 (bf16 converted exactly); lanes outside mask m are zero.
inline __attribute__((always_inline)) __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __attribute__((always_inline)) __m512 load16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
inline __attribute__((always_inline)) __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __attribute__((always_inline)) __m512 load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// Lane j < NB: the lane-form dot of x with w row j (accumulators in registers, reduced in one network). Rows
// row-major (row j at w + j * ldw) or, with kBlocked, chunk-interleaved (dot_rows_blocked; ldw = rows stored).
template <int NB, class W, bool kBlocked>
__m512 dot_block(const float* x, const W* w, int64_t ldw, int64_t k) {
  __m512 acc[16];
  LS_UNROLL
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps();
  const int64_t step = kBlocked ? 16 * ldw : 16, row = kBlocked ? 16 : ldw;
  int64_t i = 0;
  const W* chunk = w;
  for (; i + 16 <= k; i += 16, chunk += step) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    LS_UNROLL
    for (int j = 0; j < NB; ++j) acc[j] = _mm512_fmadd_ps(xv, load16(chunk + j * row), acc[j]);
  }
  if (i < k) {
    const __mmask16 m = static_cast<__mmask16>((1u << (k - i)) - 1u);
    const int64_t tail_row = kBlocked ? k - i : ldw;
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
    LS_UNROLL
    for (int j = 0; j < NB; ++j) acc[j] = _mm512_fmadd_ps(xv, load16(chunk + j * tail_row, m), acc[j]);
  }
  return reduce16(acc);
}

template <class W, bool kBlocked>
struct DotBlocks {
  using Fn = __m512 (*)(const float*, const W*, int64_t, int64_t);
  static constexpr Fn kFns[16] = {
      dot_block<1, W, kBlocked>,  dot_block<2, W, kBlocked>,  dot_block<3, W, kBlocked>,  dot_block<4, W, kBlocked>,
      dot_block<5, W, kBlocked>,  dot_block<6, W, kBlocked>,  dot_block<7, W, kBlocked>,  dot_block<8, W, kBlocked>,
      dot_block<9, W, kBlocked>,  dot_block<10, W, kBlocked>, dot_block<11, W, kBlocked>, dot_block<12, W, kBlocked>,
      dot_block<13, W, kBlocked>, dot_block<14, W, kBlocked>, dot_block<15, W, kBlocked>, dot_block<16, W, kBlocked>};
};

template <class W>
void dot_rows(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t ldw, int64_t n_rows, int64_t k, float* y,
              int64_t ldy, bool accumulate) {
  for (int64_t n = 0; n < n_rows; n += 16) {
    const int64_t nb = n_rows - n < 16 ? n_rows - n : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << nb) - 1u);
    for (int64_t m = 0; m < rows; ++m) {
      __m512 d = DotBlocks<W, false>::kFns[nb - 1](x + m * ldx, w + n * ldw, ldw, k);
      float* out = y + m * ldy + n;
      if (accumulate) d = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), d);
      _mm512_mask_storeu_ps(out, mask, d);
    }
  }
}

template <class W>
void dot_rows_blocked(const float* x, int64_t ldx, int64_t rows, const W* w, int64_t n_rows, int64_t k, float* y,
                      int64_t ldy) {
  const __mmask16 mask = static_cast<__mmask16>((1u << n_rows) - 1u);
  for (int64_t m = 0; m < rows; ++m)
    _mm512_mask_storeu_ps(y + m * ldy, mask, DotBlocks<W, true>::kFns[n_rows - 1](x + m * ldx, w, n_rows, k));
}

// accumulate_rows for H heads and 64 columns from i (mask m): H x 4 independent FMA chains.
template <int H>
void accumulate_block(const float* weights, int64_t ldw, const float* v, int64_t ldv, int64_t count, const __mmask16 (&m)[4],
                      float* y, int64_t ldy) {
  __m512 a[H][4];
  LS_UNROLL
  for (int h = 0; h < H; ++h)
    LS_UNROLL
    for (int j = 0; j < 4; ++j) a[h][j] = _mm512_maskz_loadu_ps(m[j], y + h * ldy + 16 * j);
  for (int64_t r = 0; r < count; ++r) {
    __m512 vr[4];
    LS_UNROLL
    for (int j = 0; j < 4; ++j) vr[j] = _mm512_maskz_loadu_ps(m[j], v + r * ldv + 16 * j);
    LS_UNROLL
    for (int h = 0; h < H; ++h) {
      const __m512 wr = _mm512_set1_ps(weights[h * ldw + r]);
      LS_UNROLL
      for (int j = 0; j < 4; ++j) a[h][j] = _mm512_fmadd_ps(wr, vr[j], a[h][j]);
    }
  }
  LS_UNROLL
  for (int h = 0; h < H; ++h)
    LS_UNROLL
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(y + h * ldy + 16 * j, m[j], a[h][j]);
}

void accumulate_rows(const float* weights, int64_t ldw, int64_t heads, const float* v, int64_t ldv, int64_t count,
                     int64_t n, float* y, int64_t ldy) {
  for (int64_t i = 0; i < n; i += 64) {
    __mmask16 m[4];
    LS_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t valid = n - i - 16 * j;
      m[j] = valid >= 16 ? 0xFFFF : valid <= 0 ? 0 : static_cast<__mmask16>((1u << valid) - 1u);
    }
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

__m512 exp_poly(__m512 v) {
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), v);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpC[0]);
  LS_UNROLL
  for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpC[i]));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

float softmax_exp(float* x, int64_t n, float scale) {
  __m512 mx = _mm512_set1_ps(x[0]);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1u);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, x + i));
  }
  const __m512 sc = _mm512_set1_ps(scale);
  const __m512 shift = _mm512_mul_ps(_mm512_set1_ps(_mm512_reduce_max_ps(mx)), sc);
  __m512 acc[16];
  LS_UNROLL
  for (int j = 0; j < 16; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = exp_poly(_mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sc), shift));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc[0] = _mm512_mask_add_ps(acc[0], m, acc[0], e);
  }
  return _mm512_cvtss_f32(reduce16(acc));
}

void silu_mul(const float* g, const float* u, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    const __m512 d = _mm512_add_ps(one, exp_poly(_mm512_sub_ps(zero, gv)));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(gv, d), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

}  // namespace

namespace detail {

const CpuKernels& avx512_kernel_table() {
  static const CpuKernels k = [] {
    CpuKernels t;
    t.isa = "avx512";
    t.max_tile_rows = 6;
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
