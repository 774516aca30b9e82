// json_fields.cpp: body parsing and the typed field readers.
#include "server/json_fields.h"

#include <cmath>

#include "core/utf8.h"

namespace ls::server {

Result<OJson> parse_body(std::string_view body) {
  if (body.empty()) return invalid_argument("the request body is empty; expected a JSON object");
  if (!unicode::is_valid_utf8(body)) {
    size_t pos = 0;
    while (pos < body.size()) {
      const size_t len = unicode::valid_sequence_length(body, pos);
      if (len == 0) break;
      pos += len;
    }
    return invalid_argument("the request body is not valid UTF-8 (invalid byte at offset " + std::to_string(pos) +
                            ")");
  }
  OJson json = OJson::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    // Find where it broke with the exception-free SAX parser's position report.
    struct Locator : nlohmann::json_sax<OJson> {
      size_t position = 0;
      std::string what;
      bool null() override { return true; }
      bool boolean(bool) override { return true; }
      bool number_integer(number_integer_t) override { return true; }
      bool number_unsigned(number_unsigned_t) override { return true; }
      bool number_float(number_float_t, const string_t&) override { return true; }
      bool string(string_t&) override { return true; }
      bool binary(binary_t&) override { return true; }
      bool start_object(std::size_t) override { return true; }
      bool key(string_t&) override { return true; }
      bool end_object() override { return true; }
      bool start_array(std::size_t) override { return true; }
      bool end_array() override { return true; }
      bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) override {
        position = pos;
        what = e.what();
        return false;
      }
    } locator;
    OJson::sax_parse(body, &locator, OJson::input_format_t::json, /*strict=*/true);
    std::string detail = locator.what;
    // nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, column 2: ...".
    const size_t bracket = detail.find("] ");
    if (bracket != std::string::npos) detail = detail.substr(bracket + 2);
    return invalid_argument("the request body is not valid JSON: " + detail);
  }
  if (!json.is_object()) return invalid_argument(std::string("the request body must be a JSON object, got ") +
                                                 json_type_name(json));
  return json;
}

std::string dump_json(const OJson& value) { return value.dump(-1, ' ', false, OJson::error_handler_t::replace); }

const char* json_type_name(const OJson& value) {
  switch (value.type()) {
    case OJson::value_t::null: return "null";
    case OJson::value_t::boolean: return "boolean";
    case OJson::value_t::number_integer:
    case OJson::value_t::number_unsigned: return "integer";
    case OJson::value_t::number_float: return "number";
    case OJson::value_t::string: return "string";
    case OJson::value_t::array: return "array";
    case OJson::value_t::object: return "object";
    default: return "value";
  }
}

const OJson* Fields::get(std::string_view key) const {
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

Status Fields::wrong_type(std::string_view key, const char* expected, const OJson& value) const {
  return invalid_argument(name(key) + " must be " + expected + ", got " + json_type_name(value));
}

Result<std::optional<bool>> Fields::boolean(std::string_view key) const {
  const OJson* v = get(key);
  if (!v) return std::optional<bool>();
  if (!v->is_boolean()) return wrong_type(key, "a boolean", *v);
  return std::optional<bool>(v->get<bool>());
}

Result<std::optional<double>> Fields::number(std::string_view key) const {
  const OJson* v = get(key);
  if (!v) return std::optional<double>();
  if (!v->is_number()) return wrong_type(key, "a number", *v);
  return std::optional<double>(v->get<double>());
}

Result<std::optional<double>> Fields::float32(std::string_view key) const {
  LS_ASSIGN_OR_RETURN(auto v, number(key));
  if (v && !std::isfinite(static_cast<float>(*v)))
    return invalid_argument(name(key) + " is out of range, got " + get(key)->dump());
  return v;
}

Result<std::optional<int64_t>> Fields::integer(std::string_view key, int64_t min, int64_t max) const {
  const OJson* v = get(key);
  if (!v) return std::optional<int64_t>();
  int64_t value = 0;
  bool out_of_range = false;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    out_of_range = u > static_cast<uint64_t>(INT64_MAX);
    value = out_of_range ? INT64_MAX : static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    value = v->get<int64_t>();
  } else if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!std::isfinite(d) || std::floor(d) != d) return wrong_type(key, "an integer", *v);
    out_of_range = d >= 9.2e18 || d <= -9.2e18;
    value = out_of_range ? (d > 0 ? INT64_MAX : INT64_MIN) : static_cast<int64_t>(d);
  } else {
    return wrong_type(key, "an integer", *v);
  }
  if (out_of_range || value < min || value > max) {
    std::string range;
    if (min != INT64_MIN && max != INT64_MAX) {
      range = "between " + std::to_string(min) + " and " + std::to_string(max);
    } else if (min != INT64_MIN) {
      range = ">= " + std::to_string(min);
    } else {
      range = "<= " + std::to_string(max);
    }
    return invalid_argument(name(key) + " must be " + range + ", got " + v->dump());
  }
  return std::optional<int64_t>(value);
}

Result<std::optional<uint64_t>> Fields::seed(std::string_view key) const {
  const OJson* v = get(key);
  if (!v) return std::optional<uint64_t>();
  if (v->is_number_unsigned()) return std::optional<uint64_t>(v->get<uint64_t>());
  if (v->is_number_integer()) {
    const int64_t i = v->get<int64_t>();
    if (i < 0) return invalid_argument(name(key) + " must be >= 0, got " + std::to_string(i));
    return std::optional<uint64_t>(static_cast<uint64_t>(i));
  }
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && std::floor(d) == d && d >= 0 && d < 1.8e19)
      return std::optional<uint64_t>(static_cast<uint64_t>(d));
  }
  return wrong_type(key, "an integer in [0, 2^64)", *v);
}

Result<std::optional<std::string>> Fields::string(std::string_view key) const {
  const OJson* v = get(key);
  if (!v) return std::optional<std::string>();
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  return std::optional<std::string>(v->get<std::string>());
}

Result<std::optional<std::vector<std::string>>> Fields::strings(std::string_view key, bool allow_single) const {
  using Out = std::optional<std::vector<std::string>>;
  const OJson* v = get(key);
  if (!v) return Out();
  const char* expected = allow_single ? "a string or a list of strings" : "a list of strings";
  if (v->is_string() && allow_single) return Out(std::vector<std::string>{v->get<std::string>()});
  if (!v->is_array()) return wrong_type(key, expected, *v);
  std::vector<std::string> out;
  for (const OJson& item : *v) {
    if (!item.is_string()) return wrong_type(key, expected, item);
    out.push_back(item.get<std::string>());
  }
  return Out(std::move(out));
}

Result<std::optional<std::vector<int64_t>>> Fields::integers(std::string_view key) const {
  using Out = std::optional<std::vector<int64_t>>;
  const OJson* v = get(key);
  if (!v) return Out();
  if (!v->is_array()) return wrong_type(key, "a list of integers", *v);
  std::vector<int64_t> out;
  for (const OJson& item : *v) {
    if (!item.is_number_integer()) return wrong_type(key, "a list of integers", item);
    out.push_back(item.get<int64_t>());
  }
  return Out(std::move(out));
}

Result<const OJson*> Fields::object(std::string_view key) const {
  const OJson* v = get(key);
  if (!v) return static_cast<const OJson*>(nullptr);
  if (!v->is_object()) return wrong_type(key, "an object", *v);
  return v;
}

}  // namespace ls::server
