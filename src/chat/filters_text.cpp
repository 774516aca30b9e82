// filters_text.cpp: string and number filters (trim, case, replace, indent, escape, format, tojson, int,
// float, abs, round) with jinja2's argument names and defaults.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/filters_impl.h"
#include "chat/json_value.h"
#include "chat/operators.h"
#include "chat/py_str.h"

namespace ls::chat::filters {

namespace {

Result<std::string> str_of(Interpreter& in, const Value& v) { return value_str(in, v); }

Status no_args(const CallArgs& args, const char* name) {
  if (!args.positional.empty() || !args.keyword.empty())
    return invalid_argument(std::string(name) + "() takes no arguments");
  return Status::ok();
}

bool is_title_separator(char32_t c) {
  return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
}

// Python int(str): optional sign, digits with single underscores, surrounding whitespace.
bool parse_python_int(const std::string& text, int base, int64_t* out) {
  const std::string s = py_strip(text, nullptr, true, true);
  std::string digits;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) digits.push_back(s[i++]);
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i + 1] != '_' && s[i - 1] != '+' && s[i - 1] != '-') continue;
    digits.push_back(s[i]);
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno == ERANGE || end == digits.c_str() || *end != '\0' || digits.find_first_of(" \t") != std::string::npos)
    return false;
  *out = v;
  return true;
}

bool parse_python_float(const std::string& text, double* out) {
  const std::string s = py_strip(text, nullptr, true, true);
  if (s.empty() || s.find('_') != std::string::npos) return false;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return false;
  if (s.find_first_of("xXpP") != std::string::npos) return false;
  *out = d;
  return true;
}

}  // namespace

Result<Value> trim(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"chars"}, "trim"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  const Value chars = b.get(0);
  if (chars.is_string()) return Value::string(py_strip(s, &chars.as_string(), true, true));
  if (!chars.is_none() && !chars.is_undefined()) return invalid_argument("trim chars must be None or str");
  return Value::string(py_strip(s, nullptr, true, true));
}

Result<Value> upper(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "upper"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return Value::string(py_upper(s));
}

Result<Value> lower(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "lower"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return Value::string(py_lower(s));
}

Result<Value> capitalize(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "capitalize"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return Value::string(py_capitalize(s));
}

// jinja2's do_title: every run between separators ([-\s({[<]) gets its first character uppered, the rest lowered.
Result<Value> title(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "title"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  const std::u32string cps = utf8_to_u32(s);
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool sep = is_title_separator(cps[i]);
    while (j < cps.size() && is_title_separator(cps[j]) == sep) ++j;
    const std::string run = u32_to_utf8(std::u32string_view(cps).substr(i, j - i));
    if (sep) {
      out += run;
    } else {
      std::string first;
      append_utf8(first, cps[i]);
      out += py_upper(first) + py_lower(u32_to_utf8(std::u32string_view(cps).substr(i + 1, j - i - 1)));
    }
    i = j;
  }
  return Value::string(std::move(out));
}

Result<Value> replace(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"old", "new", "count"}, "replace"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  LS_ASSIGN_OR_RETURN(std::string old_sub, str_of(in, b.get(0)));
  LS_ASSIGN_OR_RETURN(std::string new_sub, str_of(in, b.get(1)));
  int64_t count = -1;
  const Value c = b.get(2);
  if (c.is_int()) count = c.as_int();
  else if (!c.is_none() && !c.is_undefined()) return invalid_argument("replace count must be an integer");
  std::string out = py_replace(s, old_sub, new_sub, count);
  LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
  return Value::string(std::move(out));
}

Result<Value> indent(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"width", "first", "blank"}, "indent"));
  if (!v.is_string()) return invalid_argument(std::string("indent expects a string, got ") + type_name(v));
  const Value width = b.get_or(0, Value::integer(4));
  std::string pad;
  if (width.is_string()) {
    pad = width.as_string();
  } else if (width.is_int() || width.is_bool()) {
    const int64_t n = width.is_int() ? width.as_int() : width.as_bool();
    if (n > 10000) return resource_exhausted("indent width too large");
    pad = std::string(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
  } else {
    return invalid_argument("indent width must be an int or a string");
  }
  const std::vector<std::string> lines = py_splitlines(v.as_string() + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    const bool pad_line = i > 0 && (truthy(b.get(2)) || !lines[i].empty());
    if (pad_line) out += pad;
    out += lines[i];
    LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
  }
  if (truthy(b.get(1))) out = pad + out;
  return v.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
}

Result<Value> center(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"width"}, "center"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  const Value w = b.get_or(0, Value::integer(80));
  if (!w.is_int()) return invalid_argument("center width must be an integer");
  const auto len = static_cast<int64_t>(unicode::count_chars(s));
  const int64_t width = w.as_int();
  if (width <= len) return Value::string(s);
  LS_RETURN_IF_ERROR(in.check_string_size(static_cast<size_t>(width)));
  const int64_t marg = width - len;
  const int64_t left = marg / 2 + (marg & width & 1);
  return Value::string(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(marg - left), ' '));
}

Result<Value> wordcount(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "wordcount"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_to_u32(s)) {
    const bool word = c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') ||
                      (c >= 0xC0 && !py_isspace(c));
    n += word && !in_word;
    in_word = word;
  }
  return Value::integer(n);
}

Result<Value> string(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "string"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return Value::string(std::move(s));
}

Result<Value> safe(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "safe"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return Value::markup(std::move(s));
}

Result<Value> escape(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "escape"));
  if (v.is_markup()) return v;
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  std::string out = html_escape(s);
  LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
  return Value::markup(std::move(out));
}

Result<Value> forceescape(Interpreter& in, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "forceescape"));
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  std::string out = html_escape(s);
  LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
  return Value::markup(std::move(out));
}

Result<Value> format(Interpreter& in, const Value& v, CallArgs& args) {
  if (!args.keyword.empty()) return unsupported("format filter with keyword arguments is not supported");
  LS_ASSIGN_OR_RETURN(std::string s, str_of(in, v));
  return binary_op(in, "%", Value::string(std::move(s)), Value::list(args.positional, ListKind::kTuple));
}

Result<Value> tojson(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson"));
  JsonDumpOptions o;
  o.ensure_ascii = truthy(b.get_or(0, Value::boolean(false)));
  const Value indent_v = b.get_or(1, Value::none());
  if (indent_v.is_string()) {
    o.has_indent = true;
    o.indent = indent_v.as_string();
  } else if (indent_v.is_int() || indent_v.is_bool()) {
    const int64_t n = indent_v.is_int() ? indent_v.as_int() : indent_v.as_bool();
    if (n > 1000) return resource_exhausted("tojson indent too large");
    o.has_indent = true;
    o.indent = std::string(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
  } else if (!indent_v.is_none()) {
    return invalid_argument("tojson indent must be None, an int or a string");
  }
  o.item_separator = o.has_indent ? "," : ", ";
  const Value sep = b.get_or(2, Value::none());
  if (!sep.is_none()) {
    if (!sep.is_list() || sep.as_list().items.size() != 2 || !sep.as_list().items[0].is_string() ||
        !sep.as_list().items[1].is_string())
      return invalid_argument("tojson separators must be a pair of strings");
    o.item_separator = sep.as_list().items[0].as_string();
    o.key_separator = sep.as_list().items[1].as_string();
  }
  o.sort_keys = truthy(b.get_or(3, Value::boolean(false)));
  LS_ASSIGN_OR_RETURN(std::string s, json_dumps(v, o, in.limits().max_output_bytes));
  return Value::string(std::move(s));
}

Result<Value> to_int(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"default", "base"}, "int"));
  const Value dflt = b.get_or(0, Value::integer(0));
  const Value base_v = b.get_or(1, Value::integer(10));
  const int base = base_v.is_int() && base_v.as_int() >= 2 && base_v.as_int() <= 36 ? static_cast<int>(base_v.as_int()) : 10;
  if (v.is_int()) return v;
  if (v.is_bool()) return Value::integer(v.as_bool());
  if (v.is_float()) {
    const double d = v.as_float();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
    return Value::integer(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    int64_t i = 0;
    if (parse_python_int(v.as_string(), base, &i)) return Value::integer(i);
    double d = 0;
    if (parse_python_float(v.as_string(), &d) && std::isfinite(d) && std::fabs(d) < 9.2e18)
      return Value::integer(static_cast<int64_t>(d));
  }
  (void)in;
  return dflt;
}

Result<Value> to_float(Interpreter& in, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"default"}, "float"));
  if (v.is_number()) return Value::number(v.to_double());
  double d = 0;
  if (v.is_string() && parse_python_float(v.as_string(), &d)) return Value::number(d);
  (void)in;
  return b.get_or(0, Value::number(0.0));
}

Result<Value> abs(Interpreter&, const Value& v, CallArgs& args) {
  LS_RETURN_IF_ERROR(no_args(args, "abs"));
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  if (v.is_int()) {
    if (v.as_int() == INT64_MIN) return invalid_argument("integer overflow in abs");
    return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (v.is_bool()) return Value::integer(v.as_bool());
  return invalid_argument(std::string("bad operand type for abs(): '") + type_name(v) + "'");
}

Result<Value> round(Interpreter&, const Value& v, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"precision", "method"}, "round"));
  const Value p = b.get_or(0, Value::integer(0));
  const Value method = b.get_or(1, Value::string("common"));
  if (!p.is_int() || !method.is_string()) return invalid_argument("round precision must be an int");
  if (!v.is_number()) return invalid_argument(std::string("type ") + type_name(v) + " doesn't define __round__");
  const std::string& m = method.as_string();
  if (m != "common" && m != "ceil" && m != "floor") return invalid_argument("method must be common, ceil or floor");
  const int64_t prec = std::clamp<int64_t>(p.as_int(), -300, 300);
  if (m == "common" && !v.is_float()) return Value::integer(v.is_int() ? v.as_int() : v.as_bool());
  const double x = v.to_double();
  if (m != "common") {
    const double scale = std::pow(10.0, static_cast<double>(prec));
    return Value::number((m == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (!std::isfinite(x)) return Value::number(x);
  if (prec <= 0) {
    const double scale = std::pow(10.0, static_cast<double>(-prec));
    return Value::number(std::nearbyint(x / scale) * scale);
  }
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), x);
  return Value::number(std::strtod(buf, nullptr));
}

}  // namespace ls::chat::filters
