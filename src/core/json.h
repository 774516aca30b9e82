// json.h: non-throwing access to nlohmann::json documents. Every parser of user-supplied JSON (configs,
// adapter configs, tokenizer files, request bodies) goes through these so a wrong type or a missing key
// becomes a Status naming the field, never an exception.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ls {

using Json = nlohmann::json;

// Parses text; a syntax error becomes kInvalidArgument with the byte offset.
Result<Json> parse_json(std::string_view text, std::string_view what);

// Reads and parses a whole file (kNotFound when it does not exist).
Result<Json> read_json_file(const std::string& path);

// Typed field readers. `required_*` fail when the key is absent or null; `optional_*` return the fallback
// when absent or null and fail only on a wrong type. Messages name the key.
Result<int64_t> required_int(const Json& obj, std::string_view key);
Result<int64_t> optional_int(const Json& obj, std::string_view key, int64_t fallback);
Result<double> required_number(const Json& obj, std::string_view key);
Result<double> optional_number(const Json& obj, std::string_view key, double fallback);
Result<bool> optional_bool(const Json& obj, std::string_view key, bool fallback);
Result<std::string> required_string(const Json& obj, std::string_view key);
Result<std::string> optional_string(const Json& obj, std::string_view key, std::string fallback);

// The value at key when present and not null, else nullptr.
const Json* find_field(const Json& obj, std::string_view key);

}  // namespace ls
