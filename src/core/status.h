// status.h: Status and Result<T>, the value type for expected failures (bad input, missing file, unsupported
// feature). Each ErrorCode maps to one HTTP status in the server's table; nothing here throws.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace ls {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,   // malformed request or file content (HTTP 400 / 422)
  kNotFound,          // missing file, unknown adapter (HTTP 404)
  kUnsupported,       // valid input asking for something we do not implement (HTTP 400)
  kCorrupt,           // a file that violates its own format (HTTP 400 when user supplied)
  kResourceExhausted, // out of KV blocks, adapter slots, memory (HTTP 429 / 503)
  kUnavailable,       // device or engine not ready (HTTP 503)
  kInternal,          // unexpected failure of a dependency (HTTP 500)
  kFailedDependency,  // an outside service the request needs failed: an adapter's download from object
                      //  storage (wrong credentials, timeout, truncated transfer) (HTTP 424)
};

const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

  // Prefixes the message with where it happened ("config.json: ..."), keeping the code.
  Status with_context(const std::string& context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status unsupported(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }
inline Status corrupt(std::string m) { return {ErrorCode::kCorrupt, std::move(m)}; }
inline Status resource_exhausted(std::string m) { return {ErrorCode::kResourceExhausted, std::move(m)}; }
inline Status unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
inline Status failed_dependency(std::string m) { return {ErrorCode::kFailedDependency, std::move(m)}; }

// Result<T> holds either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    LS_CHECK(!std::get<Status>(data_).is_ok()) << "Result constructed from an ok Status";
  }

  bool is_ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(data_);
  }
  T& value() & {
    LS_CHECK(is_ok()) << "value() of failed Result: " << status().to_string();
    return std::get<T>(data_);
  }
  const T& value() const& {
    LS_CHECK(is_ok()) << "value() of failed Result: " << status().to_string();
    return std::get<T>(data_);
  }
  T&& value() && {
    LS_CHECK(is_ok()) << "value() of failed Result: " << status().to_string();
    return std::get<T>(std::move(data_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace ls

#define LS_CONCAT_INNER(a, b) a##b
#define LS_CONCAT(a, b) LS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when expr (a Status) is not ok.
#define LS_RETURN_IF_ERROR(expr)                    \
  do {                                              \
    ::ls::Status ls_status_ = (expr);               \
    if (!ls_status_.is_ok()) return ls_status_;     \
  } while (0)

// `LS_ASSIGN_OR_RETURN(auto x, make_x());` declares x from a Result or returns its Status.
#define LS_ASSIGN_OR_RETURN(lhs, expr) LS_ASSIGN_OR_RETURN_IMPL(LS_CONCAT(ls_result_, __LINE__), lhs, expr)
#define LS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
