// histogram.h: Histogram, a fixed-bucket histogram in Prometheus' model (upper bounds, an implicit +Inf
// bucket, sum and count). Not thread-safe: owners guard it and copy it out for exposition.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ls {

struct Histogram {
  std::vector<double> bounds;    // upper bounds, ascending; an implicit +Inf bucket follows
  std::vector<uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v) {
    const auto i = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
    ++counts[i];
    sum += v;
    ++count;
  }
};

}  // namespace ls
