// builtins.h: the names a template can use besides its variables: jinja2's filters and tests, the Python
// methods of str/dict/list that the sandbox allows, and the globals transformers installs (range, dict,
// namespace, raise_exception, strftime_now, joiner). Each family lives in its own .cpp file.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "chat/value.h"

namespace ls::chat {

class Interpreter;
class Scope;

// Binds call arguments to a Python signature (positional in order, then keywords by name).
class BoundArgs {
 public:
  static Result<BoundArgs> bind(const CallArgs& args, std::initializer_list<const char*> names, const char* fn);
  bool has(size_t i) const { return i < values_.size() && values_[i].has_value(); }
  Value get(size_t i) const { return has(i) ? *values_[i] : Value::undefined(); }
  Value get_or(size_t i, Value fallback) const { return has(i) ? *values_[i] : std::move(fallback); }

 private:
  std::vector<std::optional<Value>> values_;
};

// Filters (filters_*.cpp). Unknown names are an error.
bool has_filter(const std::string& name);
Result<Value> call_filter(Interpreter& in, const std::string& name, Value input, CallArgs& args);

// Tests (is_tests.cpp).
bool has_test(const std::string& name);
Result<bool> call_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);

// obj.name when obj is a str, dict or list and name one of the methods the sandbox allows; nullopt otherwise.
std::optional<Value> bound_method(const Value& obj, const std::string& name);

// range, dict, namespace, raise_exception, strftime_now, joiner (globals.cpp).
void install_globals(Scope& scope);

// The code points of a string, each as a one-character string value.
std::vector<Value> string_chars(const std::string& s);

// Items of an iterable value (list items, dict keys, string characters; undefined is empty).
Result<std::vector<Value>> iterable_items(const Value& v);

// str(v) bounded by the interpreter's string limit.
Result<std::string> value_str(Interpreter& in, const Value& v);

// markupsafe's escape: & < > " ' as entities.
std::string html_escape(const std::string& s);

// jinja2's make_attrgetter: "a.b.0" looked up item by item.
Result<Value> get_attribute_path(Interpreter& in, const Value& v, const Value& path);

}  // namespace ls::chat
