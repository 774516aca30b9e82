// builtins_common.cpp: argument binding and the small helpers shared by filters, tests and methods.
#include "chat/builtins.h"

#include "chat/interpreter.h"
#include "chat/py_str.h"

namespace ls::chat {

Result<BoundArgs> BoundArgs::bind(const CallArgs& args, std::initializer_list<const char*> names, const char* fn) {
  BoundArgs b;
  b.values_.resize(names.size());
  if (args.positional.size() > names.size())
    return invalid_argument(std::string(fn) + "() takes at most " + std::to_string(names.size()) + " argument(s)");
  for (size_t i = 0; i < args.positional.size(); ++i) b.values_[i] = args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    size_t i = 0;
    for (const char* n : names) {
      if (key == n) break;
      ++i;
    }
    if (i == names.size()) return invalid_argument(std::string(fn) + "() got an unexpected keyword argument '" + key + "'");
    if (b.values_[i]) return invalid_argument(std::string(fn) + "() got multiple values for argument '" + key + "'");
    b.values_[i] = value;
  }
  return b;
}

std::vector<Value> string_chars(const std::string& s) {
  std::vector<Value> out;
  for (char32_t cp : utf8_to_u32(s)) {
    std::string c;
    append_utf8(c, cp);
    out.push_back(Value::string(std::move(c)));
  }
  return out;
}

Result<std::vector<Value>> iterable_items(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      return v.as_list().items;
    case Value::Kind::kDict: {
      if (v.as_dict().is_namespace) break;
      std::vector<Value> keys;
      for (const auto& [k, _] : v.as_dict().entries) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString:
      return string_chars(v.as_string());
    default:
      break;
  }
  return invalid_argument(std::string("'") + type_name(v) + "' object is not iterable");
}

Result<std::string> value_str(Interpreter& in, const Value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  if (!append_str(out, v, in.limits().max_output_bytes))
    return resource_exhausted("template exceeded its string size limit");
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Result<Value> get_attribute_path(Interpreter& in, const Value& v, const Value& path) {
  if (!path.is_string()) return in.get_item(v, path);
  Value cur = v;
  const std::string& p = path.as_string();
  size_t start = 0;
  while (true) {
    const size_t dot = p.find('.', start);
    const std::string part = p.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    Value key = Value::string(part);
    if (digits && part.size() < 18) key = Value::integer(std::stoll(part));
    LS_ASSIGN_OR_RETURN(cur, in.get_item(cur, key));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

}  // namespace ls::chat
