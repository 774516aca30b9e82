// value.cpp: Python semantics of template values: truthiness, equality, ordering, str() and repr().
#include "chat/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/py_str.h"

namespace ls::chat {

namespace {

constexpr int kMaxDepth = 200;

bool is_numeric(const Value& v) { return v.is_bool() || v.is_int() || v.is_float(); }

bool equal_at(const Value& a, const Value& b, int depth) {
  if (depth > kMaxDepth) return false;
  if (is_numeric(a) && is_numeric(b)) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    const int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
    const int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
    return x == y;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      if (a.list_ptr() == b.list_ptr()) return true;
      const List& x = a.as_list();
      const List& y = b.as_list();
      if ((x.kind == ListKind::kTuple) != (y.kind == ListKind::kTuple)) return false;
      if (x.kind == ListKind::kIterator || y.kind == ListKind::kIterator) return false;
      if (x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equal_at(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict_ptr() == b.dict_ptr()) return true;
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.is_namespace || y.is_namespace) return false;
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equal_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    default:
      return false;
  }
}

// Python's str.isprintable() for the code points that matter in practice (controls, format characters,
// separators); other non-ASCII code points count as printable.
bool is_printable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x80) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c == 0x61C || c == 0x1680 || c == 0x180E || c == 0x3000 || c == 0xFEFF) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F)) return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || (c >= 0xFFF9 && c <= 0xFFFB)) return false;
  if ((c >= 0xE0000 && c <= 0xE007F) || c >= 0xF0000) return false;
  return true;
}

void append_string_repr(std::string& out, const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out.push_back(quote);
  for (char32_t c : utf8_to_u32(s)) {
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_printable(c)) {
      append_utf8(out, c);
    } else {
      if (c <= 0xFF)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c <= 0xFFFF)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
}

bool append_value(std::string& out, const Value& v, size_t max_bytes, bool repr, int depth);

bool append_items(std::string& out, const List& list, size_t max_bytes, int depth) {
  const bool tuple = list.kind == ListKind::kTuple;
  out.push_back(tuple ? '(' : '[');
  for (size_t i = 0; i < list.items.size(); ++i) {
    if (i) out += ", ";
    if (!append_value(out, list.items[i], max_bytes, true, depth + 1)) return false;
  }
  if (tuple && list.items.size() == 1) out.push_back(',');
  out.push_back(tuple ? ')' : ']');
  return out.size() <= max_bytes;
}

bool append_dict(std::string& out, const Dict& dict, size_t max_bytes, int depth) {
  if (dict.is_namespace) out += "<Namespace ";
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : dict.entries) {
    if (!first) out += ", ";
    first = false;
    if (!append_value(out, k, max_bytes, true, depth + 1)) return false;
    out += ": ";
    if (!append_value(out, v, max_bytes, true, depth + 1)) return false;
  }
  out.push_back('}');
  if (dict.is_namespace) out.push_back('>');
  return out.size() <= max_bytes;
}

bool append_value(std::string& out, const Value& v, size_t max_bytes, bool repr, int depth) {
  if (depth > kMaxDepth) return false;
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      if (repr) out += "Undefined";
      break;
    case Value::Kind::kNone:
      out += "None";
      break;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      break;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::kFloat:
      out += float_repr(v.as_float());
      break;
    case Value::Kind::kString:
      if (repr)
        append_string_repr(out, v.as_string());
      else
        out += v.as_string();
      break;
    case Value::Kind::kList:
      if (v.as_list().kind == ListKind::kIterator) {
        out += "<generator object>";
        break;
      }
      return append_items(out, v.as_list(), max_bytes, depth);
    case Value::Kind::kDict:
      return append_dict(out, v.as_dict(), max_bytes, depth);
    case Value::Kind::kCallable:
      out += "<function " + v.as_callable().name + ">";
      break;
  }
  return out.size() <= max_bytes;
}

}  // namespace

Value Value::list(std::vector<Value> items, ListKind kind) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->kind = kind;
  return Value(Data(std::in_place_index<6>, std::move(l)));
}

Value Value::empty_dict() { return dict(std::make_shared<Dict>()); }

Value Value::callable(std::string name, NativeFunction fn) {
  auto c = std::make_shared<Callable>();
  c->name = std::move(name);
  c->fn = std::move(fn);
  return Value(Data(std::in_place_index<8>, CallablePtr(std::move(c))));
}

double Value::to_double() const {
  if (is_bool()) return as_bool() ? 1.0 : 0.0;
  if (is_int()) return static_cast<double>(as_int());
  if (is_float()) return as_float();
  return 0.0;
}

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries)
    if (values_equal(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

Value* Dict::find_mutable(const Value& key) {
  for (auto& [k, v] : entries)
    if (values_equal(k, key)) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (Value* existing = find_mutable(key)) {
    *existing = std::move(value);
    return;
  }
  entries.emplace_back(std::move(key), std::move(value));
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_float() != 0.0;
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
      return v.as_list().kind == ListKind::kIterator || !v.as_list().items.empty();
    case Value::Kind::kDict:
      return v.as_dict().is_namespace || !v.as_dict().entries.empty();
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

bool values_equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }

Result<bool> value_less(const Value& a, const Value& b) {
  if (is_numeric(a) && is_numeric(b)) {
    if (a.is_float() || b.is_float()) return a.to_double() < b.to_double();
    const int64_t x = a.is_bool() ? a.as_bool() : a.as_int();
    const int64_t y = b.is_bool() ? b.as_bool() : b.as_int();
    return x < y;
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.as_list().kind == b.as_list().kind && a.as_list().kind != ListKind::kIterator) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return value_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return invalid_argument(std::string("'<' not supported between instances of '") + type_name(a) + "' and '" +
                          type_name(b) + "'");
}

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.as_list().kind == ListKind::kTuple ? "tuple" : v.as_list().kind == ListKind::kList ? "list" : "generator";
    case Value::Kind::kDict:
      return v.as_dict().is_namespace ? "Namespace" : "dict";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci looks like "-1.2345e+05": split into sign, digits and exponent.
  const bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  const int exp10 = std::stoi(sci.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = neg ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (static_cast<size_t>(decpt) >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  const int shown = decpt - 1;
  std::snprintf(buf, sizeof buf, "e%c%02d", shown < 0 ? '-' : '+', shown < 0 ? -shown : shown);
  out += buf;
  return out;
}

bool append_str(std::string& out, const Value& v, size_t max_bytes) {
  return append_value(out, v, max_bytes, false, 0);
}

bool append_repr(std::string& out, const Value& v, size_t max_bytes) {
  return append_value(out, v, max_bytes, true, 0);
}

std::string to_display_string(const Value& v) {
  std::string out;
  if (!append_str(out, v, 4096)) out += "...";
  return out;
}

}  // namespace ls::chat
