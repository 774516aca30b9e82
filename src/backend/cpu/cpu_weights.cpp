// cpu_weights.cpp: packing float32 rows into the panel layouts of cpu_weights.h (rounding to bf16 / fp16 to
// nearest even, int8 per-row absmax quantization) and reading one row back (the embedding lookup).
#include "backend/cpu/cpu_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"

namespace ls::cpu {

DType weight_format_dtype(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return DType::kF32;
    case WeightFormat::kBF16: return DType::kBF16;
    case WeightFormat::kF16: return DType::kF16;
    case WeightFormat::kI8: return DType::kI8;
  }
  return DType::kF32;
}

const char* weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return "f32";
    case WeightFormat::kBF16: return "bf16";
    case WeightFormat::kF16: return "f16";
    case WeightFormat::kI8: return "int8";
  }
  return "?";
}

namespace {

size_t element_bytes(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return 4;
    case WeightFormat::kBF16:
    case WeightFormat::kF16: return 2;
    case WeightFormat::kI8: return 1;
  }
  return 4;
}

int64_t padded_k(WeightFormat format, int64_t cols) { return format == WeightFormat::kBF16 ? (cols + 1) / 2 * 2 : cols; }

}  // namespace

size_t PackedMatrix::panel_bytes() const {
  return static_cast<size_t>(padded_k(format, cols)) * kPanelCols * element_bytes(format);
}

size_t packed_matrix_bytes(WeightFormat format, int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kPanelCols - 1) / kPanelCols;
  size_t bytes = static_cast<size_t>(panels) * static_cast<size_t>(padded_k(format, cols)) * kPanelCols * element_bytes(format);
  if (format == WeightFormat::kI8) bytes = (bytes + 63) / 64 * 64 + static_cast<size_t>(panels) * kPanelCols * sizeof(float);
  return bytes;
}

PackedMatrix packed_matrix_at(void* memory, WeightFormat format, int64_t rows, int64_t cols) {
  PackedMatrix m;
  m.format = format;
  m.rows = rows;
  m.cols = cols;
  m.panels = (rows + kPanelCols - 1) / kPanelCols;
  m.data = memory;
  if (format == WeightFormat::kI8) {
    const size_t panel_total = static_cast<size_t>(m.panels) * m.panel_bytes();
    m.scales = reinterpret_cast<float*>(static_cast<char*>(memory) + (panel_total + 63) / 64 * 64);
  }
  return m;
}

void pack_panel(const PackedMatrix& m, int64_t panel, const float* src, int64_t ld_src) {
  const int64_t first = panel * kPanelCols, valid = std::min<int64_t>(kPanelCols, m.rows - first);
  const int64_t kp = padded_k(m.format, m.cols);
  auto value = [&](int64_t c, int64_t k) { return c < valid && k < m.cols ? src[c * ld_src + k] : 0.0f; };
  void* out = const_cast<void*>(m.panel(panel));
  switch (m.format) {
    case WeightFormat::kF32: {
      auto* p = static_cast<float*>(out);
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t c = 0; c < kPanelCols; ++c) p[k * kPanelCols + c] = value(c, k);
      return;
    }
    case WeightFormat::kF16: {
      auto* p = static_cast<uint16_t*>(out);
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t c = 0; c < kPanelCols; ++c) p[k * kPanelCols + c] = float_to_f16(value(c, k));
      return;
    }
    case WeightFormat::kBF16: {
      auto* p = static_cast<uint16_t*>(out);
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t c = 0; c < kPanelCols; ++c) p[(k / 2) * 2 * kPanelCols + 2 * c + (k & 1)] = float_to_bf16(value(c, k));
      return;
    }
    case WeightFormat::kI8: {
      auto* p = static_cast<int8_t*>(out);
      float inv[kPanelCols];
      for (int64_t c = 0; c < kPanelCols; ++c) {
        float max_abs = 0;
        for (int64_t k = 0; k < m.cols; ++k) max_abs = std::max(max_abs, std::fabs(value(c, k)));
        const float scale = max_abs / 127.0f;
        m.scales[first + c] = scale;
        inv[c] = scale > 0 ? scale : 1.0f;
      }
      for (int64_t k = 0; k < kp; ++k)
        for (int64_t c = 0; c < kPanelCols; ++c) {
          const float q = std::nearbyint(value(c, k) / inv[c]);
          p[k * kPanelCols + c] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
        }
      return;
    }
  }
}

void unpack_row(const PackedMatrix& m, int64_t row, float* out) {
  LS_CHECK(row >= 0 && row < m.rows) << "packed row outside the matrix";
  const int64_t c = row % kPanelCols;
  const void* base = m.panel(row / kPanelCols);
  switch (m.format) {
    case WeightFormat::kF32: {
      const auto* p = static_cast<const float*>(base) + c;
      for (int64_t k = 0; k < m.cols; ++k) out[k] = p[k * kPanelCols];
      return;
    }
    case WeightFormat::kF16: {
      const auto* p = static_cast<const uint16_t*>(base) + c;
      for (int64_t k = 0; k < m.cols; ++k) out[k] = f16_to_float(p[k * kPanelCols]);
      return;
    }
    case WeightFormat::kBF16: {
      const auto* p = static_cast<const uint16_t*>(base) + 2 * c;
      for (int64_t k = 0; k < m.cols; ++k) out[k] = bf16_to_float(p[(k / 2) * 2 * kPanelCols + (k & 1)]);
      return;
    }
    case WeightFormat::kI8: {
      const auto* p = static_cast<const int8_t*>(base) + c;
      const float scale = m.scales[row];
      for (int64_t k = 0; k < m.cols; ++k) out[k] = static_cast<float>(p[k * kPanelCols]) * scale;
      return;
    }
  }
}

}  // namespace ls::cpu
