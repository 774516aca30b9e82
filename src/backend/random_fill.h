// random_fill.h: the counter-based random numbers behind Backend::fill_uniform. Element i of a fill with seed s
// is a pure function of (s, i), so every backend (and every thread layout) produces the same dummy weights.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LS_HOST_DEVICE __host__ __device__
#else
#define LS_HOST_DEVICE
#endif

namespace ls {

LS_HOST_DEVICE inline float uniform_at(uint64_t seed, uint64_t index, float lo, float hi) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + index + 1;  // splitmix64 of the counter
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + (hi - lo) * static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace ls
