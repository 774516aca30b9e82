// dtype.h: element types of tensors in files and in backend memory, their sizes, and scalar conversions
// between float32 and the 16-bit float formats (round-to-nearest-even, NaN kept).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ls {

enum class DType : uint8_t { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64, kF8E4M3, kF8E5M2 };

size_t dtype_size(DType dtype);
// The safetensors spelling ("BF16"), and its inverse; nullopt for an unknown name.
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
inline bool is_float_dtype(DType d) { return d == DType::kF16 || d == DType::kBF16 || d == DType::kF32; }

inline float bf16_to_float(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_float(uint16_t v);
uint16_t float_to_f16(float f);

// Converts n elements of a float tensor (F32/F16/BF16) to float32. src may be unaligned.
void convert_to_f32(const void* src, DType dtype, size_t n, float* dst);

}  // namespace ls
