// dispatch.h: the one place that turns run-time shapes into the template instances the attention kernels
// are compiled for (head dim 64 and 128; GQA group sizes 1, 2, 4, 8). Anything else takes the generic kernel.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ls::cuda {

// Calls f(std::integral_constant<int, D>{}) for a supported head dim; false when head_dim is not one.
template <typename F>
bool dispatch_head_dim(int64_t head_dim, F&& f) {
  switch (head_dim) {
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    default: return false;
  }
}

// Calls f(std::integral_constant<int, G>{}) for a supported group size (query heads per KV head).
template <typename F>
bool dispatch_group(int64_t group, F&& f) {
  switch (group) {
    case 1: f(std::integral_constant<int, 1>{}); return true;
    case 2: f(std::integral_constant<int, 2>{}); return true;
    case 4: f(std::integral_constant<int, 4>{}); return true;
    case 8: f(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

inline bool head_dim_instantiated(int64_t d) { return d == 64 || d == 128; }
inline bool group_instantiated(int64_t g) { return g == 1 || g == 2 || g == 4 || g == 8; }

}  // namespace ls::cuda
