// json.cpp: the non-throwing JSON readers.
#include "core/json.h"

#include "core/file.h"

#include <fstream>
#include <sstream>

namespace ls {

Result<Json> parse_json(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return invalid_argument(std::string(what) + " is not valid JSON: " + e.what());
  }
}

Result<Json> read_json_file(const std::string& path) {
  LS_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_json(text, path);
}

const Json* find_field(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

namespace {

Status wrong_type(std::string_view key, const char* expected, const Json& value) {
  return invalid_argument("field \"" + std::string(key) + "\" must be " + expected + ", got " +
                          std::string(value.type_name()));
}

Status missing(std::string_view key) { return invalid_argument("missing field \"" + std::string(key) + "\""); }

Result<int64_t> as_int(std::string_view key, const Json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return invalid_argument("field \"" + std::string(key) + "\" is out of range");
    return v.get<int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d)) && d > -9e18 && d < 9e18)
      return static_cast<int64_t>(d);
  }
  return wrong_type(key, "an integer", v);
}

}  // namespace

Result<int64_t> required_int(const Json& obj, std::string_view key) {
  const Json* v = find_field(obj, key);
  if (!v) return missing(key);
  return as_int(key, *v);
}

Result<int64_t> optional_int(const Json& obj, std::string_view key, int64_t fallback) {
  const Json* v = find_field(obj, key);
  if (!v) return fallback;
  return as_int(key, *v);
}

Result<double> required_number(const Json& obj, std::string_view key) {
  const Json* v = find_field(obj, key);
  if (!v) return missing(key);
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  return v->get<double>();
}

Result<double> optional_number(const Json& obj, std::string_view key, double fallback) {
  const Json* v = find_field(obj, key);
  if (!v) return fallback;
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  return v->get<double>();
}

Result<bool> optional_bool(const Json& obj, std::string_view key, bool fallback) {
  const Json* v = find_field(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) return wrong_type(key, "a boolean", *v);
  return v->get<bool>();
}

Result<std::string> required_string(const Json& obj, std::string_view key) {
  const Json* v = find_field(obj, key);
  if (!v) return missing(key);
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

Result<std::string> optional_string(const Json& obj, std::string_view key, std::string fallback) {
  const Json* v = find_field(obj, key);
  if (!v) return fallback;
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return v->get<std::string>();
}

}  // namespace ls
