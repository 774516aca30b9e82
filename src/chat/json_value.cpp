// json_value.cpp: JSON in (ordered) and Python-compatible json.dumps out.
#include "chat/json_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/py_str.h"

namespace ls::chat {

namespace {

constexpr int kMaxJsonDepth = 200;

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : utf8_to_u32(s)) {
    char buf[16];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                          static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          append_utf8(out, c);
        }
    }
  }
  out.push_back('"');
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

class Dumper {
 public:
  Dumper(const JsonDumpOptions& o, size_t max_bytes) : o_(o), max_(max_bytes) {}

  Status dump(const Value& v, int depth) {
    if (depth > kMaxJsonDepth) return invalid_argument("tojson: value nests too deeply");
    if (out_.size() > max_) return resource_exhausted("tojson: output exceeds the string size limit");
    switch (v.kind()) {
      case Value::Kind::kNone: out_ += "null"; return Status::ok();
      case Value::Kind::kBool: out_ += v.as_bool() ? "true" : "false"; return Status::ok();
      case Value::Kind::kInt: out_ += std::to_string(v.as_int()); return Status::ok();
      case Value::Kind::kFloat: out_ += json_float(v.as_float()); return Status::ok();
      case Value::Kind::kString: append_json_string(out_, v.as_string(), o_.ensure_ascii); return Status::ok();
      case Value::Kind::kList:
        if (v.as_list().kind != ListKind::kIterator) return dump_list(v.as_list(), depth);
        break;
      case Value::Kind::kDict:
        if (!v.as_dict().is_namespace) return dump_dict(v.as_dict(), depth);
        break;
      default:
        break;
    }
    return invalid_argument(std::string("Object of type ") + type_name(v) + " is not JSON serializable");
  }

  std::string take() { return std::move(out_); }

 private:
  void newline(int level) {
    if (!o_.has_indent) return;
    out_.push_back('\n');
    for (int i = 0; i < level; ++i) out_ += o_.indent;
  }

  Status dump_list(const List& l, int depth) {
    if (l.items.empty()) {
      out_ += "[]";
      return Status::ok();
    }
    out_.push_back('[');
    for (size_t i = 0; i < l.items.size(); ++i) {
      if (i) out_ += o_.item_separator;
      newline(depth + 1);
      LS_RETURN_IF_ERROR(dump(l.items[i], depth + 1));
    }
    newline(depth);
    out_.push_back(']');
    return Status::ok();
  }

  Result<std::string> key_string(const Value& k) {
    if (k.is_string()) return k.as_string();
    if (k.is_none()) return std::string("null");
    if (k.is_bool()) return std::string(k.as_bool() ? "true" : "false");
    if (k.is_int()) return std::to_string(k.as_int());
    if (k.is_float()) return json_float(k.as_float());
    return invalid_argument(std::string("keys must be str, int, float, bool or None, not ") + type_name(k));
  }

  Status dump_dict(const Dict& d, int depth) {
    if (d.entries.empty()) {
      out_ += "{}";
      return Status::ok();
    }
    std::vector<std::pair<std::string, const Value*>> entries;
    for (const auto& [k, v] : d.entries) {
      LS_ASSIGN_OR_RETURN(std::string key, key_string(k));
      entries.emplace_back(std::move(key), &v);
    }
    if (o_.sort_keys)
      std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out_.push_back('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out_ += o_.item_separator;
      newline(depth + 1);
      append_json_string(out_, entries[i].first, o_.ensure_ascii);
      out_ += o_.key_separator;
      LS_RETURN_IF_ERROR(dump(*entries[i].second, depth + 1));
    }
    newline(depth);
    out_.push_back('}');
    return Status::ok();
  }

  const JsonDumpOptions& o_;
  size_t max_;
  std::string out_;
};

}  // namespace

Value json_to_value(const OrderedJson& j) {
  switch (j.type()) {
    case OrderedJson::value_t::null:
      return Value::none();
    case OrderedJson::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case OrderedJson::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case OrderedJson::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case OrderedJson::value_t::number_float:
      return Value::number(j.get<double>());
    case OrderedJson::value_t::string:
      return Value::string(j.get<std::string>());
    case OrderedJson::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(json_to_value(item));
      return Value::list(std::move(items));
    }
    case OrderedJson::value_t::object: {
      auto d = std::make_shared<Dict>();
      d->entries.reserve(j.size());
      for (const auto& [k, v] : j.items()) d->entries.emplace_back(Value::string(k), json_to_value(v));
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();
  }
}

Result<std::string> json_dumps(const Value& value, const JsonDumpOptions& options, size_t max_bytes) {
  Dumper d(options, max_bytes);
  LS_RETURN_IF_ERROR(d.dump(value, 0));
  std::string out = d.take();
  if (out.size() > max_bytes) return resource_exhausted("tojson: output exceeds the string size limit");
  return out;
}

}  // namespace ls::chat
