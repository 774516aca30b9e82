// json_fields.h: typed, non-throwing reads of request-body fields for both API families. Bodies are parsed into
// nlohmann::ordered_json (chat templates print tool schemas in the client's key order). Every failure is a
// kInvalidArgument Status whose message names the field as the client spelled it ("`parameters.top_k` must be
// an integer, got string") so the route can render it in its family's error shape.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ls::server {

using OJson = nlohmann::ordered_json;

// Parses a request body: invalid UTF-8, a syntax error or a non-object top level fail with a message saying
// where. Never throws.
Result<OJson> parse_body(std::string_view body);

// JSON text of a value for responses; invalid UTF-8 inside strings is replaced, NaN and infinities become null.
std::string dump_json(const OJson& value);

const char* json_type_name(const OJson& value);

// Reads fields of one object. prefix ("parameters.") is prepended to key names in messages.
class Fields {
 public:
  Fields(const OJson& object, std::string prefix = "") : obj_(object), prefix_(std::move(prefix)) {}

  // The value at key, or nullptr when absent or null.
  const OJson* get(std::string_view key) const;
  std::string name(std::string_view key) const { return "`" + prefix_ + std::string(key) + "`"; }

  Result<std::optional<bool>> boolean(std::string_view key) const;
  Result<std::optional<double>> number(std::string_view key) const;
  // A number the engine will hold as a 32-bit float: values beyond its range are refused.
  Result<std::optional<double>> float32(std::string_view key) const;
  // Integers (a float with no fraction, such as 5.0, is accepted as pydantic does) within [min, max].
  Result<std::optional<int64_t>> integer(std::string_view key, int64_t min = INT64_MIN,
                                         int64_t max = INT64_MAX) const;
  // A seed: any integer in [0, 2^64).
  Result<std::optional<uint64_t>> seed(std::string_view key) const;
  Result<std::optional<std::string>> string(std::string_view key) const;
  // A string or a list of strings (OpenAI `stop`); a list of strings only when allow_single is false.
  Result<std::optional<std::vector<std::string>>> strings(std::string_view key, bool allow_single) const;
  Result<std::optional<std::vector<int64_t>>> integers(std::string_view key) const;
  Result<const OJson*> object(std::string_view key) const;  // nullptr when absent or null

 private:
  Status wrong_type(std::string_view key, const char* expected, const OJson& value) const;
  const OJson& obj_;
  std::string prefix_;
};

// Whether a value read with Fields::float32 is positive as the float32 the engine computes with (a positive
// double can round to 0).
inline bool positive_as_float32(double v) { return static_cast<float>(v) > 0.0f; }

}  // namespace ls::server
