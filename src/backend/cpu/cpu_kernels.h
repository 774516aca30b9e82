// cpu_kernels.h: the CPU backend's inner loops, one implementation per instruction set (cpu_kernels_avx512.cpp,
// cpu_kernels_avx2.cpp, cpu_kernels_portable.cpp), picked once when the backend is made. Each implementation
// computes every output element by the same sequence of IEEE float32 operations, written out below, so results
// are bitwise equal across instruction sets; and since no element's sequence depends on which other rows,
// columns or threads share a call, they are bitwise equal across batch sizes, tile shapes and thread counts.
// That is what makes the CPU backend batch invariant.
#pragma once

#include <cstdint>

namespace ls::cpu {

// Storage of a packed weight matrix (cpu_weights.h has the layouts).
enum class WeightFormat : uint8_t { kF32 = 0, kBF16, kF16, kI8 };
inline constexpr int kNumWeightFormats = 4;
// Output features per packed panel, and the columns one GEMM tile computes.
inline constexpr int kPanelCols = 64;
// Extra bytes the backend allocates past every buffer, so kernels may read a full vector past a row's end.
inline constexpr int kOverreadBytes = 256;

// One GEMM tile, rows x kPanelCols outputs, weights in "k-major" panel layout: for every output column c < 64,
//   a = 0;  for k = 0 .. K-1:  a = fma(x[r][k], w(k, c), a)
//   v = a;  v = v * scale[c] (if scale);  v = v + bias[c] (if bias);  v = y[r][c] + v (if accumulate)
//   y[r][c] = v for c < ncols.
// w(k, c) is the weight converted exactly to float32: element c of row k at w + k * ldw for kF32 / kF16 / kI8;
// for kBF16 the pair (w(k, c), w(k + 1, c)) of an even k sits at w + (k / 2) * 2 * ldw + 2 * c. Columns
// ncols..63 are computed from whatever w holds there (packed panels are zero-padded; LoRA's B^T rows are read
// up to kOverreadBytes past their end) and not stored.
struct GemmTile {
  const float* x = nullptr;
  int64_t ldx = 0;
  int32_t rows = 0;  // 1 .. CpuKernels::max_tile_rows
  const void* w = nullptr;
  int64_t ldw = kPanelCols;
  int64_t k = 0;
  const float* scale = nullptr;  // kPanelCols values
  const float* bias = nullptr;   // ncols values
  float* y = nullptr;
  int64_t ldy = 0;
  int32_t ncols = kPanelCols;
  bool accumulate = false;
};

// exp_poly, the exp of every kernel (softmax, SiLU): sample_exp's construction (backend/sampling_math.h: Cody-
// Waite reduction, Taylor polynomial to degree 7), clamped to [-87, 88] instead of cut at -87 so that it also
// serves SiLU's positive arguments:
//   v = min(max(v, -87), 88);  n = nearbyint(v * kLog2e);  r = fma(n, -kLn2Hi, v);  r = fma(n, -kLn2Lo, r)
//   p = kExpC[0];  p = fma(p, r, kExpC[i]) for i = 1..7;  exp = p * 2^n.
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;
inline constexpr float kLn2Lo = 1.428606765330187045e-06f;
inline constexpr float kExpC[8] = {1.98412698e-4f, 1.38888889e-3f, 8.33333333e-3f, 4.16666667e-2f,
                                   1.66666667e-1f, 0.5f,           1.0f,           1.0f};

struct CpuKernels {
  const char* isa = "";
  int32_t max_tile_rows = 1;
  void (*gemm[kNumWeightFormats])(const GemmTile& tile) = {};

  // Lane-form dot products of row-major float32 rows: for m < rows, n < n_rows,
  //   a_l = fma chain from 0 over k = l, l + 16, ... < round_up(K, 16) of x[m][k] * w[n][k] (0 * 0 past K)
  //   d = ((a_l + a_{l+8}) + (.. l+4 ..)) ..: s8[l] = a[l] + a[l + 8]; s4[l] = s8[l] + s8[l + 4];
  //   s2[l] = s4[l] + s4[l + 2]; d = s2[0] + s2[1];   y[m][n] = accumulate ? y[m][n] + d : d.
  void (*dot_rows)(const float* x, int64_t ldx, int64_t rows, const float* w, int64_t ldw, int64_t n_rows,
                   int64_t k, float* y, int64_t ldy, bool accumulate) = nullptr;
  // The same with bf16 rows w (converted exactly to float32).
  void (*dot_rows_bf16)(const float* x, int64_t ldx, int64_t rows, const uint16_t* w, int64_t ldw, int64_t n_rows,
                        int64_t k, float* y, int64_t ldy, bool accumulate) = nullptr;
  // dot_rows (accumulate false) over n_rows <= 16 rows stored chunk-interleaved, so that one pass over k reads
  // them as a single stream: for the full chunks c < k / 16, row j's values k = 16c .. 16c + 15 are at
  // w + c * 16 * n_rows + 16 j; the k % 16 values of the last chunk at w + (k / 16) * 16 * n_rows + j * (k % 16).
  void (*dot_rows_blocked)(const float* x, int64_t ldx, int64_t rows, const float* w, int64_t n_rows, int64_t k,
                           float* y, int64_t ldy) = nullptr;
  void (*dot_rows_blocked_bf16)(const float* x, int64_t ldx, int64_t rows, const uint16_t* w, int64_t n_rows,
                                int64_t k, float* y, int64_t ldy) = nullptr;

  // For h < heads, i < n: y[h][i] = fma chain over r = 0 .. count-1 of (w[h][r], v[r][i], y[h][i]), with
  // w[h][r] = weights[h * ldw + r], v[r][i] = v[r * ldv + i], y[h][i] = y[h * ldy + i].
  void (*accumulate_rows)(const float* weights, int64_t ldw, int64_t heads, const float* v, int64_t ldv,
                          int64_t count, int64_t n, float* y, int64_t ldy) = nullptr;

  // Softmax numerators: with m = max x[i] (i < n), x[i] = exp_poly(x[i] * scale - m * scale) (each product
  // rounded to float32); returns their lane sum: a_l = a_l + x[i] over i = l mod 16 in ascending order from 0,
  // reduced by the dot_rows tree.
  float (*softmax_exp)(float* x, int64_t n, float scale) = nullptr;

  // out[i] = (g[i] / (1 + exp_poly(-g[i]))) * u[i] for i < n.
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t n) = nullptr;
};

const CpuKernels& portable_kernels();
// Null when this build or this CPU lacks the instruction set.
const CpuKernels* avx2_kernels();
const CpuKernels* avx512_kernels();

}  // namespace ls::cpu
