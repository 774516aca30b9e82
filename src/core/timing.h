// timing.h: wall-clock intervals and the median of timing samples, for benchmarks and the commands that time
// themselves (one copy, not one per benchmark).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace ls {

// Seconds of std::chrono::steady_clock since t0.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The median of v (the mean of the two middle values when there are an even number); 0 for no samples.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  return 0.5 * (*std::max_element(v.begin(), v.begin() + mid) + upper);
}

}  // namespace ls
