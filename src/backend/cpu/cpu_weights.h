// cpu_weights.h: PackedMatrix, how the CPU backend stores a weight matrix [rows = out_features, cols =
// in_features]: ceil(rows / 64) panels of 64 output features, each "k-major" (for every input index k the 64
// features' weights side by side), so a GEMM tile reads one contiguous run of memory and a thread's range of
// panels is one sequential stream:
//   kF32, kF16: panel[k * 64 + c]                     (float32 / IEEE half)
//   kBF16:      panel[(k / 2) * 128 + 2 * c + k % 2]  (a 32-bit lane holds w(k, c) and w(k + 1, c))
//   kI8:        panel[k * 64 + c] = q, with scales[64 p + c]: w = q * scale, q = nearbyint(w / scale) in
//               [-127, 127], scale = max |w| of the feature's row / 127 (one scale per output feature)
// Padding features of the last panel are zero. The int8 scales follow the panels in the same allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"

namespace ls::cpu {

struct PackedMatrix {
  WeightFormat format = WeightFormat::kF32;
  int64_t rows = 0, cols = 0, panels = 0;
  void* data = nullptr;
  float* scales = nullptr;  // kI8: panels * 64 values; else null

  size_t panel_bytes() const;
  const void* panel(int64_t p) const { return static_cast<const char*>(data) + static_cast<size_t>(p) * panel_bytes(); }
};

// The tensor dtype a format is reported as.
DType weight_format_dtype(WeightFormat format);
const char* weight_format_name(WeightFormat format);

// Bytes of a packed [rows, cols] matrix, panels and scales.
size_t packed_matrix_bytes(WeightFormat format, int64_t rows, int64_t cols);
// The matrix laid out in `memory` (packed_matrix_bytes of it).
PackedMatrix packed_matrix_at(void* memory, WeightFormat format, int64_t rows, int64_t cols);

// Packs float32 rows [64 * panel, 64 * panel + 64) of a matrix (row r at src + (r - 64 * panel) * ld_src; rows
// past m.rows are not read) into panel `panel` of m.
void pack_panel(const PackedMatrix& m, int64_t panel, const float* src, int64_t ld_src);
// out[c] = w(row, c) as float32 (int8: q * scale), c < cols.
void unpack_row(const PackedMatrix& m, int64_t row, float* out);

}  // namespace ls::cpu
