// check.cpp: the abort path of LS_CHECK.
#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace ls::detail {

CheckFailure::CheckFailure(const char* file, int line, const char* condition) {
  stream_ << file << ":" << line << ": check failed: " << condition << " ";
}

CheckFailure::~CheckFailure() {
  std::fprintf(stderr, "%s\n", stream_.str().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ls::detail
