// methods.cpp: the Python str, dict and list methods templates call (`content.strip()`, `message.get('x')`,
// `text.split('</think>')`). Methods that would mutate a list or dict resolve to undefined, as jinja2's
// ImmutableSandboxedEnvironment makes them unsafe attributes; calling one is then an error.
#include <algorithm>

#include "chat/builtins.h"
#include "chat/interpreter.h"
#include "chat/py_str.h"

namespace ls::chat {

namespace {

using Method = Result<Value> (*)(Interpreter&, const Value&, CallArgs&);

Result<std::string> opt_string(const BoundArgs& b, size_t i, const char* fn, bool* given) {
  *given = false;
  if (!b.has(i) || b.get(i).is_none()) return std::string();
  if (!b.get(i).is_string()) return invalid_argument(std::string(fn) + " arg must be None or str");
  *given = true;
  return b.get(i).as_string();
}

Result<Value> str_strip_impl(const Value& self, CallArgs& args, bool left, bool right, const char* fn) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"chars"}, fn));
  bool given = false;
  LS_ASSIGN_OR_RETURN(std::string chars, opt_string(b, 0, fn, &given));
  return Value::string(py_strip(self.as_string(), given ? &chars : nullptr, left, right));
}

Result<Value> str_split_impl(const Value& self, CallArgs& args, bool reverse) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"sep", "maxsplit"}, "split"));
  bool given = false;
  LS_ASSIGN_OR_RETURN(std::string sep, opt_string(b, 0, "split", &given));
  if (given && sep.empty()) return invalid_argument("empty separator");
  const Value maxsplit = b.get_or(1, Value::integer(-1));
  if (!maxsplit.is_int()) return invalid_argument("maxsplit must be an integer");
  auto parts = reverse ? py_rsplit(self.as_string(), given ? &sep : nullptr, maxsplit.as_int())
                       : py_split(self.as_string(), given ? &sep : nullptr, maxsplit.as_int());
  std::vector<Value> out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::list(std::move(out));
}

Result<Value> str_affix(const Value& self, CallArgs& args, bool prefix) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"affix", "start", "end"}, prefix ? "startswith" : "endswith"));
  if (b.has(1) || b.has(2)) return unsupported("startswith/endswith with start or end is not supported");
  std::vector<Value> options;
  const Value affix = b.get(0);
  if (affix.is_list() && affix.as_list().kind == ListKind::kTuple)
    options = affix.as_list().items;
  else
    options.push_back(affix);
  const std::string& s = self.as_string();
  for (const Value& o : options) {
    if (!o.is_string()) return invalid_argument("startswith/endswith first arg must be str or a tuple of str");
    const std::string& a = o.as_string();
    if (a.size() > s.size()) continue;
    if (prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0)
      return Value::boolean(true);
  }
  return Value::boolean(false);
}

Result<Value> str_replace(Interpreter& in, const Value& self, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"old", "new", "count"}, "replace"));
  if (!b.get(0).is_string() || !b.get(1).is_string()) return invalid_argument("replace() arguments must be str");
  const Value count = b.get_or(2, Value::integer(-1));
  if (!count.is_int()) return invalid_argument("replace() count must be an integer");
  std::string out = py_replace(self.as_string(), b.get(0).as_string(), b.get(1).as_string(), count.as_int());
  LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
  return Value::string(std::move(out));
}

// str.format with {} / {0} / {name} fields and no format specs.
Result<Value> str_format(Interpreter& in, const Value& self, CallArgs& args) {
  const std::string& f = self.as_string();
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '}' && i + 1 < f.size() && f[i + 1] == '}') {
      out.push_back('}');
      ++i;
      continue;
    }
    if (f[i] != '{') {
      out.push_back(f[i]);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) return invalid_argument("Single '{' encountered in format string");
    const std::string field = f.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) return unsupported("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty() || field.find_first_not_of("0123456789") == std::string::npos) {
      const size_t idx = field.empty() ? auto_index++ : std::stoul(field);
      if (idx >= args.positional.size()) return invalid_argument("Replacement index out of range for positional args tuple");
      v = &args.positional[idx];
    } else {
      for (const auto& [k, val] : args.keyword)
        if (k == field) v = &val;
      if (!v) return invalid_argument("KeyError: '" + field + "'");
    }
    LS_ASSIGN_OR_RETURN(std::string s, value_str(in, *v));
    out += s;
    LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
    i = close;
  }
  return Value::string(std::move(out));
}

// The argument-less str methods: case mapping, splitlines and the is*() predicates.
Result<Value> str_case_method(const std::string& s, const std::string& name, CallArgs& args) {
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument(name + "() takes no arguments");
  if (name == "upper") return Value::string(py_upper(s));
  if (name == "lower" || name == "casefold") return Value::string(py_lower(s));
  if (name == "title") return Value::string(py_title(s));
  if (name == "capitalize") return Value::string(py_capitalize(s));
  if (name == "splitlines") {
    std::vector<Value> out;
    for (auto& line : py_splitlines(s)) out.push_back(Value::string(std::move(line)));
    return Value::list(std::move(out));
  }
  const std::u32string cps = utf8_to_u32(s);
  auto all = [&](auto pred) { return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred); };
  if (name == "isspace") return Value::boolean(all(py_isspace));
  if (name == "isdigit") return Value::boolean(all([](char32_t c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha")
    return Value::boolean(all([](char32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }));
  if (name == "isalnum")
    return Value::boolean(all([](char32_t c) { return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9'); }));
  if (name == "islower") return Value::boolean(s != py_upper(s) && s == py_lower(s));
  if (name == "isupper") return Value::boolean(s != py_lower(s) && s == py_upper(s));
  return unsupported("str." + name + "() is not supported");
}

Result<Value> str_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args) {
  const std::string& s = self.as_string();
  if (name == "strip") return str_strip_impl(self, args, true, true, "strip");
  if (name == "lstrip") return str_strip_impl(self, args, true, false, "lstrip");
  if (name == "rstrip") return str_strip_impl(self, args, false, true, "rstrip");
  if (name == "split") return str_split_impl(self, args, false);
  if (name == "rsplit") return str_split_impl(self, args, true);
  if (name == "startswith") return str_affix(self, args, true);
  if (name == "endswith") return str_affix(self, args, false);
  if (name == "replace") return str_replace(in, self, args);
  if (name == "format") return str_format(in, self, args);
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "casefold" ||
      name == "splitlines" || name.rfind("is", 0) == 0)
    return str_case_method(s, name, args);
  if (name == "join") {
    LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"iterable"}, "join"));
    LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(b.get(0)));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) return invalid_argument("sequence item " + std::to_string(i) + ": expected str instance");
      if (i) out += s;
      out += items[i].as_string();
      LS_RETURN_IF_ERROR(in.check_string_size(out.size()));
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index" || name == "rindex" ||
      name == "removeprefix" || name == "removesuffix") {
    LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"sub"}, name.c_str()));
    if (!b.get(0).is_string()) return invalid_argument(name + "() argument must be str");
    const std::string sub = b.get(0).as_string();
    if (name == "removeprefix")
      return Value::string(s.compare(0, sub.size(), sub) == 0 ? s.substr(sub.size()) : s);
    if (name == "removesuffix")
      return Value::string(sub.size() <= s.size() && s.compare(s.size() - sub.size(), sub.size(), sub) == 0
                               ? s.substr(0, s.size() - sub.size())
                               : s);
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(unicode::count_chars(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t p = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") return invalid_argument("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(unicode::count_chars(std::string_view(s).substr(0, p))));
  }
  return unsupported("str." + name + "() is not supported");
}

Result<Value> dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const Dict& d = self.as_dict();
  if (name == "get") {
    LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"key", "default"}, "get"));
    if (const Value* v = d.find(b.get(0))) return *v;
    return b.get_or(1, Value::none());
  }
  if (!args.positional.empty() || !args.keyword.empty()) return invalid_argument(name + "() takes no arguments");
  std::vector<Value> out;
  for (const auto& [k, v] : d.entries) {
    if (name == "keys")
      out.push_back(k);
    else if (name == "values")
      out.push_back(v);
    else
      out.push_back(Value::list({k, v}, ListKind::kTuple));
  }
  if (name == "copy") {
    auto copy = std::make_shared<Dict>(d);
    copy->is_namespace = false;
    return Value::dict(std::move(copy));
  }
  return Value::list(std::move(out));
}

Result<Value> list_method(const Value& self, const std::string& name, CallArgs& args) {
  const auto& items = self.as_list().items;
  if (name == "copy") return Value::list(items);
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"value"}, name.c_str()));
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!values_equal(items[i], b.get(0))) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") return invalid_argument("value is not in list");
  return Value::integer(count);
}

bool is_one_of(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

}  // namespace

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    if (!is_one_of(name, {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "replace",
                          "format", "upper", "lower", "title", "capitalize", "casefold", "splitlines", "isspace",
                          "isdigit", "isalpha", "isalnum", "islower", "isupper", "join", "find", "rfind", "count",
                          "index", "rindex", "removeprefix", "removesuffix"}))
      return std::nullopt;
    return Value::callable("str." + name, [obj, name](Interpreter& in, CallArgs& args) {
      return str_method(in, obj, name, args);
    });
  }
  if (obj.is_dict() && !obj.as_dict().is_namespace) {
    if (is_one_of(name, {"pop", "popitem", "setdefault", "update", "clear"})) return Value::undefined();
    if (!is_one_of(name, {"get", "items", "keys", "values", "copy"})) return std::nullopt;
    return Value::callable("dict." + name, [obj, name](Interpreter&, CallArgs& args) {
      return dict_method(obj, name, args);
    });
  }
  if (obj.is_list() && obj.as_list().kind != ListKind::kIterator) {
    const bool is_list = obj.as_list().kind == ListKind::kList;
    if (is_list && is_one_of(name, {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"}))
      return Value::undefined();
    if (!is_one_of(name, {"count", "index"}) && !(is_list && name == "copy")) return std::nullopt;
    return Value::callable("list." + name, [obj, name](Interpreter&, CallArgs& args) {
      return list_method(obj, name, args);
    });
  }
  return std::nullopt;
}

}  // namespace ls::chat
