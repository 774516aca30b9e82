// dtype_test.cpp: the float16 and bfloat16 conversions, over every 16-bit pattern, against their definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"

namespace ls {
namespace {

// IEEE half by its definition: (-1)^s * 2^(e-15) * 1.m, subnormals 2^-14 * 0.m.
double f16_by_definition(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<double>(mantissa), -24);
  } else if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else {
    magnitude = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  }
  return sign ? -magnitude : magnitude;
}

TEST(DType, EveryF16ValueConvertsExactlyAndRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const auto v = static_cast<uint16_t>(h);
    const float f = f16_to_float(v);
    const double want = f16_by_definition(v);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << std::hex << h;
    EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    EXPECT_EQ(float_to_f16(f), v) << std::hex << h;
  }
}

TEST(DType, ConvertToF32MatchesTheScalarConversions) {
  std::vector<uint16_t> halves(0x10000);
  for (uint32_t h = 0; h <= 0xffff; ++h) halves[h] = static_cast<uint16_t>(h);
  std::vector<float> out(halves.size());
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    convert_to_f32(halves.data(), dtype, halves.size(), out.data());
    for (uint32_t h = 0; h <= 0xffff; ++h) {
      const float want = dtype == DType::kF16 ? f16_to_float(halves[h]) : bf16_to_float(halves[h]);
      uint32_t a, b;
      std::memcpy(&a, &out[h], 4);
      std::memcpy(&b, &want, 4);
      ASSERT_EQ(a, b) << dtype_name(dtype) << " " << std::hex << h;
    }
  }
}

}  // namespace
}  // namespace ls
