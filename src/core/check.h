// check.h: LS_CHECK for broken invariants (programming errors). It prints file:line and the streamed
// message, then aborts. Expected failures use Status instead (core/status.h).
#pragma once

#include <sstream>

namespace ls::detail {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Turns the streamed CheckFailure expression into void so it fits in a ternary.
struct CheckVoidify {
  void operator&(CheckFailure&) {}
  void operator&(CheckFailure&&) {}
};

}  // namespace ls::detail

#define LS_CHECK(cond) \
  (cond) ? (void)0 : ::ls::detail::CheckVoidify() & ::ls::detail::CheckFailure(__FILE__, __LINE__, #cond)
