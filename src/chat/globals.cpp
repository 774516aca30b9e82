// globals.cpp: the global functions a chat template can call: jinja2's range, dict, namespace and joiner, and
// transformers' raise_exception and strftime_now.
#include <ctime>

#include "chat/builtins.h"
#include "chat/interpreter.h"

namespace ls::chat {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Result<Value> range_fn(Interpreter& in, CallArgs& args) {
  if (!args.keyword.empty()) return invalid_argument("range() takes no keyword arguments");
  if (args.positional.empty() || args.positional.size() > 3)
    return invalid_argument("range expected 1 to 3 arguments");
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < args.positional.size(); ++i) {
    const Value& a = args.positional[i];
    if (!a.is_int() && !a.is_bool())
      return invalid_argument(std::string("'") + type_name(a) + "' object cannot be interpreted as an integer");
    v[args.positional.size() == 1 ? 1 : i] = a.is_int() ? a.as_int() : a.as_bool();
  }
  const int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) return invalid_argument("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t x = start; step > 0 ? x < stop : x > stop; x += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange)
      return invalid_argument("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    out.push_back(Value::integer(x));
    if ((step > 0 && x > INT64_MAX - step) || (step < 0 && x < INT64_MIN - step)) break;
  }
  (void)in;
  return Value::list(std::move(out));
}

// dict(mapping_or_pairs?, **kwargs) and namespace(...) build their contents the same way.
Result<DictPtr> dict_from_args(CallArgs& args, const char* fn) {
  auto d = std::make_shared<Dict>();
  if (args.positional.size() > 1) return invalid_argument(std::string(fn) + " expected at most 1 argument");
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict() && !src.as_dict().is_namespace) {
      d->entries = src.as_dict().entries;
    } else if (src.is_list()) {
      for (const Value& pair : src.as_list().items) {
        if (!pair.is_list() || pair.as_list().items.size() != 2)
          return invalid_argument(std::string(fn) + ": sequence elements must be pairs");
        d->set(pair.as_list().items[0], pair.as_list().items[1]);
      }
    } else {
      return invalid_argument(std::string("'") + type_name(src) + "' object is not iterable");
    }
  }
  for (const auto& [k, v] : args.keyword) d->set(Value::string(k), v);
  return d;
}

Result<Value> namespace_fn(Interpreter& in, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(DictPtr d, dict_from_args(args, "namespace"));
  for (const auto& [k, _] : d->entries) {
    if (k.is_string() && !k.as_string().empty() && k.as_string()[0] == '_')
      return invalid_argument("chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
                              k.as_string() + "'");
  }
  d->is_namespace = true;
  in.track_namespace(d);
  return Value::dict(std::move(d));
}

Result<Value> raise_exception_fn(Interpreter& in, CallArgs& args) {
  if (args.positional.size() != 1 || !args.keyword.empty())
    return invalid_argument("raise_exception() takes exactly one argument");
  LS_ASSIGN_OR_RETURN(std::string message, value_str(in, args.positional[0]));
  return invalid_argument(message);
}

Result<Value> strftime_now_fn(Interpreter& in, CallArgs& args) {
  if (args.positional.size() != 1 || !args.keyword.empty() || !args.positional[0].is_string())
    return invalid_argument("strftime_now() takes one format string");
  const std::string& fmt = args.positional[0].as_string();
  if (fmt.empty()) return Value::string("");
  if (fmt.size() > 4096) return invalid_argument("strftime_now format too long");
  const std::tm tm = in.now();
  std::string buf(fmt.size() * 16 + 64, '\0');
  // A trailing marker tells an empty expansion from a buffer that was too small.
  const std::string marked = fmt + "|";
  const size_t n = std::strftime(buf.data(), buf.size(), marked.c_str(), &tm);
  if (n == 0) return invalid_argument("strftime_now output too long");
  buf.resize(n - 1);
  return Value::string(std::move(buf));
}

Result<Value> joiner_fn(Interpreter&, CallArgs& args) {
  LS_ASSIGN_OR_RETURN(BoundArgs b, BoundArgs::bind(args, {"sep"}, "joiner"));
  const Value sep = b.get_or(0, Value::string(", "));
  auto used = std::make_shared<bool>(false);
  return Value::callable("joiner", [sep, used](Interpreter&, CallArgs&) -> Result<Value> {
    if (!*used) {
      *used = true;
      return Value::string("");
    }
    return sep;
  });
}

}  // namespace

void install_globals(Scope& scope) {
  scope.set("range", Value::callable("range", range_fn));
  scope.set("dict", Value::callable("dict", [](Interpreter&, CallArgs& args) -> Result<Value> {
    LS_ASSIGN_OR_RETURN(DictPtr d, dict_from_args(args, "dict"));
    return Value::dict(std::move(d));
  }));
  scope.set("namespace", Value::callable("namespace", namespace_fn));
  scope.set("raise_exception", Value::callable("raise_exception", raise_exception_fn));
  scope.set("strftime_now", Value::callable("strftime_now", strftime_now_fn));
  scope.set("joiner", Value::callable("joiner", joiner_fn));
}

}  // namespace ls::chat
