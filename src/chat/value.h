// value.h: the runtime value of the chat-template interpreter. Python-like data (None, bool, int, float, str,
// list/tuple, dict) plus jinja2's Undefined and callables (builtins, macros, bound methods). Lists and dicts are
// shared by reference as in Python; only namespaces are ever mutated (the sandbox is immutable).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/status.h"

namespace ls::chat {

class Value;
class Interpreter;
struct List;
struct Dict;
struct Callable;
using ListPtr = std::shared_ptr<List>;
using DictPtr = std::shared_ptr<Dict>;
using CallablePtr = std::shared_ptr<const Callable>;

// Arguments of one call: positional values, then keyword arguments in call order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<Result<Value>(Interpreter&, CallArgs&)>;

// How a sequence prints and behaves: lists and tuples index and have a length; iterators (what jinja2's
// select/map/reverse filters return as generators) can only be iterated.
enum class ListKind : uint8_t { kList, kTuple, kIterator };

class Value {
 public:
  enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() = default;  // undefined
  static Value undefined() { return Value(); }
  static Value none() { return Value(Data(std::in_place_index<1>)); }
  static Value boolean(bool b) { return Value(Data(std::in_place_index<2>, b)); }
  static Value integer(int64_t i) { return Value(Data(std::in_place_index<3>, i)); }
  static Value number(double d) { return Value(Data(std::in_place_index<4>, d)); }
  static Value string(std::string s) { return Value(Data(std::in_place_index<5>, std::move(s))); }
  // A markupsafe.Markup string (from the safe and escape filters): `Markup + str` HTML-escapes the str side.
  static Value markup(std::string s) {
    Value v = string(std::move(s));
    v.markup_ = true;
    return v;
  }
  static Value list(std::vector<Value> items, ListKind kind = ListKind::kList);
  static Value dict(DictPtr d) { return Value(Data(std::in_place_index<7>, std::move(d))); }
  static Value empty_dict();
  static Value callable(std::string name, NativeFunction fn);

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python's numbers.Number
  bool is_string() const { return kind() == Kind::kString; }
  bool is_markup() const { return markup_; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_callable() const { return kind() == Kind::kCallable; }

  bool as_bool() const { return std::get<2>(data_); }
  int64_t as_int() const { return std::get<3>(data_); }
  double as_float() const { return std::get<4>(data_); }
  const std::string& as_string() const { return std::get<5>(data_); }
  const List& as_list() const { return *std::get<6>(data_); }
  const ListPtr& list_ptr() const { return std::get<6>(data_); }
  const Dict& as_dict() const { return *std::get<7>(data_); }
  const DictPtr& dict_ptr() const { return std::get<7>(data_); }
  const Callable& as_callable() const { return *std::get<8>(data_); }

  // Numeric value of a bool, int or float.
  double to_double() const;

 private:
  using Data = std::variant<std::monostate, std::monostate, bool, int64_t, double, std::string, ListPtr, DictPtr,
                            CallablePtr>;
  explicit Value(Data d) : data_(std::move(d)) {}
  Data data_;
  bool markup_ = false;
};

struct List {
  std::vector<Value> items;
  ListKind kind = ListKind::kList;
};

// A dict keeps insertion order (Python 3.7+); keys are usually strings. A namespace is a dict whose attributes
// `{% set ns.x = ... %}` may assign.
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  bool is_namespace = false;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  Value* find_mutable(const Value& key);
  void set(Value key, Value value);
};

struct Callable {
  std::string name;
  NativeFunction fn;
};

// Python truthiness (jinja2 Undefined is false).
bool truthy(const Value& v);

// Python ==. Ints, floats and bools compare numerically; containers compare deeply.
bool values_equal(const Value& a, const Value& b);

// Python <: numbers with numbers, strings with strings, sequences lexicographically. Other pairs are a TypeError,
// returned as an error.
Result<bool> value_less(const Value& a, const Value& b);

// Python's type name of a value, for error messages ("str", "int", "dict", ...).
const char* type_name(const Value& v);

// Python float repr ("1.0", "0.1", "1e+16", "inf", "nan").
std::string float_repr(double d);

// Appends str(v) (what `{{ v }}` prints) or repr(v). Returns false once out would exceed max_bytes.
bool append_str(std::string& out, const Value& v, size_t max_bytes);
bool append_repr(std::string& out, const Value& v, size_t max_bytes);

// str(v) with a generous size bound; for error messages and small values.
std::string to_display_string(const Value& v);

}  // namespace ls::chat
