// operators.cpp: arithmetic, repetition, concatenation, printf-style % formatting and comparisons.
#include "chat/operators.h"

#include <cmath>

#include "chat/builtins.h"
#include "chat/interpreter.h"

namespace ls::chat {

namespace {

bool is_intlike(const Value& v) { return v.is_int() || v.is_bool(); }
int64_t int_of(const Value& v) { return v.is_int() ? v.as_int() : static_cast<int64_t>(v.as_bool()); }

Status type_error(const std::string& op, const Value& a, const Value& b) {
  return invalid_argument("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                          type_name(b) + "'");
}

Status overflow() { return invalid_argument("integer overflow in template arithmetic"); }

Result<Value> int_arith(const std::string& op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) return overflow();
  } else if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) return overflow();
  } else if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) return overflow();
  } else if (op == "/") {
    if (y == 0) return invalid_argument("division by zero");
    return Value::number(static_cast<double>(x) / static_cast<double>(y));
  } else if (op == "//" || op == "%") {
    if (y == 0) return invalid_argument("integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) return overflow();
    int64_t q = x / y;
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    r = op == "//" ? q : m;
  } else if (op == "**") {
    if (y < 0) return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
    r = 1;
    int64_t base = x;
    for (int64_t e = y; e > 0; e >>= 1) {
      if ((e & 1) && __builtin_mul_overflow(r, base, &r)) return overflow();
      if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
    }
  }
  return Value::integer(r);
}

Result<Value> float_arith(const std::string& op, double x, double y) {
  if (op == "+") return Value::number(x + y);
  if (op == "-") return Value::number(x - y);
  if (op == "*") return Value::number(x * y);
  if (op == "/") {
    if (y == 0) return invalid_argument("float division by zero");
    return Value::number(x / y);
  }
  if (op == "//" || op == "%") {
    if (y == 0) return invalid_argument("float modulo by zero");
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value::number(m);
    // CPython's float floor division.
    const double mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
    if (div == 0) return Value::number(std::copysign(0.0, x / y));
    double floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
    return Value::number(floordiv);
  }
  if (op == "**") {
    if (x == 0 && y < 0) return invalid_argument("0.0 cannot be raised to a negative power");
    return Value::number(std::pow(x, y));
  }
  return invalid_argument("unknown operator " + op);
}

Result<Value> repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_string()) {
    const size_t n = seq.as_string().size();
    if (n && static_cast<uint64_t>(times) > in.limits().max_output_bytes / n + 1)
      return resource_exhausted("template exceeded its string size limit");
    LS_RETURN_IF_ERROR(in.check_string_size(n * static_cast<size_t>(times)));
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value::string(std::move(out));
  }
  const List& list = seq.as_list();
  const size_t n = list.items.size();
  if (n && static_cast<uint64_t>(times) > in.limits().max_collection_size / n + 1)
    return resource_exhausted("template exceeded its collection size limit");
  LS_RETURN_IF_ERROR(in.check_collection_size(n * static_cast<size_t>(times)));
  std::vector<Value> out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), list.items.begin(), list.items.end());
  return Value::list(std::move(out), list.kind);
}

// printf-style `"fmt" % args` for %s %r %d %i %f %% (what templates use).
Result<Value> percent_format(Interpreter& in, const std::string& fmt, const Value& arg) {
  std::vector<Value> args;
  if (arg.is_list() && arg.as_list().kind == ListKind::kTuple)
    args = arg.as_list().items;
  else
    args.push_back(arg);
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) return invalid_argument("incomplete format");
    const char c = fmt[i];
    if (c == '%') {
      out.push_back('%');
      continue;
    }
    if (next >= args.size()) return invalid_argument("not enough arguments for format string");
    const Value& v = args[next++];
    if (c == 's') {
      if (!append_str(out, v, in.limits().max_output_bytes)) return resource_exhausted("string size limit");
    } else if (c == 'r') {
      if (!append_repr(out, v, in.limits().max_output_bytes)) return resource_exhausted("string size limit");
    } else if ((c == 'd' || c == 'i') && v.is_number()) {
      out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : int_of(v));
    } else if (c == 'f' && v.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%f", v.to_double());
      out += buf;
    } else {
      return unsupported(std::string("format directive %") + c + " is not supported");
    }
  }
  if (next < args.size()) return invalid_argument("not all arguments converted during string formatting");
  return Value::string(std::move(out));
}

}  // namespace

Result<Value> unary_op(char op, const Value& v) {
  if (v.is_undefined()) return invalid_argument("UndefinedError: unary operator on an undefined value");
  if (v.is_float()) return Value::number(op == '-' ? -v.as_float() : v.as_float());
  if (is_intlike(v)) {
    const int64_t x = int_of(v);
    if (op == '+') return Value::integer(x);
    if (x == INT64_MIN) return overflow();
    return Value::integer(-x);
  }
  return invalid_argument(std::string("bad operand type for unary ") + op + ": '" + type_name(v) + "'");
}

Result<Value> binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined())
    return invalid_argument("UndefinedError: operator " + op + " on an undefined value");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return float_arith(op, a.to_double(), b.to_double());
    return int_arith(op, int_of(a), int_of(b));
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      LS_RETURN_IF_ERROR(in.check_string_size(a.as_string().size() + b.as_string().size()));
      if (a.is_markup() || b.is_markup()) {
        // markupsafe: the plain side is escaped, the result stays markup.
        const std::string left = a.is_markup() ? a.as_string() : html_escape(a.as_string());
        const std::string right = b.is_markup() ? b.as_string() : html_escape(b.as_string());
        LS_RETURN_IF_ERROR(in.check_string_size(left.size() + right.size()));
        return Value::markup(left + right);
      }
      return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.as_list().kind == b.as_list().kind && a.as_list().kind != ListKind::kIterator) {
      LS_RETURN_IF_ERROR(in.check_collection_size(a.as_list().items.size() + b.as_list().items.size()));
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::list(std::move(items), a.as_list().kind);
    }
  }
  if (op == "*") {
    auto is_seq = [](const Value& v) {
      return v.is_string() || (v.is_list() && v.as_list().kind != ListKind::kIterator);
    };
    if (is_seq(a) && is_intlike(b)) return repeat(in, a, int_of(b));
    if (is_intlike(a) && is_seq(b)) return repeat(in, b, int_of(a));
  }
  if (op == "%" && a.is_string()) return percent_format(in, a.as_string(), b);
  return type_error(op, a, b);
}

Result<bool> contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!needle.is_string())
        return invalid_argument(std::string("'in <string>' requires string as left operand, not ") + type_name(needle));
      return haystack.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& item : haystack.as_list().items)
        if (values_equal(item, needle)) return true;
      return false;
    case Value::Kind::kDict:
      if (haystack.as_dict().is_namespace) break;
      return haystack.as_dict().find(needle) != nullptr;
    default:
      break;
  }
  return invalid_argument(std::string("argument of type '") + type_name(haystack) + "' is not iterable");
}

Result<bool> compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return values_equal(a, b);
  if (op == "!=") return !values_equal(a, b);
  if (op == "in") return contains(b, a);
  if (op == "notin") {
    LS_ASSIGN_OR_RETURN(bool found, contains(b, a));
    return !found;
  }
  if (a.is_undefined() || b.is_undefined()) return invalid_argument("UndefinedError: comparison with an undefined value");
  if (op == "<") return value_less(a, b);
  if (op == ">") return value_less(b, a);
  if (op == "<=") {
    if (values_equal(a, b) && !(a.is_dict() || b.is_dict())) return true;
    return value_less(a, b);
  }
  if (op == ">=") {
    if (values_equal(a, b) && !(a.is_dict() || b.is_dict())) return true;
    return value_less(b, a);
  }
  return invalid_argument("unknown comparison " + op);
}

}  // namespace ls::chat
