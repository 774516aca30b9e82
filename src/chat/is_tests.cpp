// is_tests.cpp: jinja2's tests (`x is defined`, `x is string`, `x is divisibleby 3`, ...) with Python semantics.
#include "chat/builtins.h"
#include "chat/interpreter.h"
#include "chat/operators.h"
#include "chat/py_str.h"

namespace ls::chat {

namespace {

using TestFn = Result<bool> (*)(Interpreter&, const Value&, CallArgs&);

Result<bool> arg0(const CallArgs& args, const char* name, Value* out) {
  if (args.positional.size() + args.keyword.size() != 1)
    return invalid_argument(std::string("test '") + name + "' takes exactly one argument");
  *out = args.positional.empty() ? args.keyword[0].second : args.positional[0];
  return true;
}

Result<bool> no_args(const CallArgs& args, const char* name) {
  if (!args.positional.empty() || !args.keyword.empty())
    return invalid_argument(std::string("test '") + name + "' takes no arguments");
  return true;
}

Result<Value> modulo(Interpreter& in, const Value& v, const Value& m) { return binary_op(in, "%", v, m); }

Result<bool> compare_test(const char* op, const Value& v, CallArgs& args, const char* name) {
  Value other;
  LS_RETURN_IF_ERROR(arg0(args, name, &other).status());
  return compare_op(op, v, other);
}

struct TestEntry {
  const char* name;
  TestFn fn;
};

#define LS_SIMPLE_TEST(expr)                                                   \
  [](Interpreter& in, const Value& v, CallArgs& args) -> Result<bool> {        \
    (void)in;                                                                  \
    LS_RETURN_IF_ERROR(no_args(args, "test").status());                        \
    return (expr);                                                             \
  }

const TestEntry kTests[] = {
    {"defined", LS_SIMPLE_TEST(!v.is_undefined())},
    {"undefined", LS_SIMPLE_TEST(v.is_undefined())},
    {"none", LS_SIMPLE_TEST(v.is_none())},
    {"boolean", LS_SIMPLE_TEST(v.is_bool())},
    {"false", LS_SIMPLE_TEST(v.is_bool() && !v.as_bool())},
    {"true", LS_SIMPLE_TEST(v.is_bool() && v.as_bool())},
    {"integer", LS_SIMPLE_TEST(v.is_int())},
    {"float", LS_SIMPLE_TEST(v.is_float())},
    {"number", LS_SIMPLE_TEST(v.is_number())},
    {"string", LS_SIMPLE_TEST(v.is_string())},
    {"mapping", LS_SIMPLE_TEST(v.is_dict() && !v.as_dict().is_namespace)},
    {"iterable", LS_SIMPLE_TEST(v.is_undefined() || v.is_string() || v.is_list() ||
                                (v.is_dict() && !v.as_dict().is_namespace))},
    {"sequence", LS_SIMPLE_TEST(v.is_undefined() || v.is_string() ||
                                (v.is_list() && v.as_list().kind != ListKind::kIterator) ||
                                (v.is_dict() && !v.as_dict().is_namespace))},
    {"callable", LS_SIMPLE_TEST(v.is_callable())},
    {"escaped", LS_SIMPLE_TEST(false)},
    {"lower", LS_SIMPLE_TEST(v.is_string() ? (v.as_string() != py_upper(v.as_string()) &&
                                              v.as_string() == py_lower(v.as_string()))
                                           : false)},
    {"upper", LS_SIMPLE_TEST(v.is_string() ? (v.as_string() != py_lower(v.as_string()) &&
                                              v.as_string() == py_upper(v.as_string()))
                                           : false)},
    {"odd",
     [](Interpreter& in, const Value& v, CallArgs& args) -> Result<bool> {
       LS_RETURN_IF_ERROR(no_args(args, "odd").status());
       LS_ASSIGN_OR_RETURN(Value m, modulo(in, v, Value::integer(2)));
       return values_equal(m, Value::integer(1));
     }},
    {"even",
     [](Interpreter& in, const Value& v, CallArgs& args) -> Result<bool> {
       LS_RETURN_IF_ERROR(no_args(args, "even").status());
       LS_ASSIGN_OR_RETURN(Value m, modulo(in, v, Value::integer(2)));
       return values_equal(m, Value::integer(0));
     }},
    {"divisibleby",
     [](Interpreter& in, const Value& v, CallArgs& args) -> Result<bool> {
       Value n;
       LS_RETURN_IF_ERROR(arg0(args, "divisibleby", &n).status());
       LS_ASSIGN_OR_RETURN(Value m, modulo(in, v, n));
       return values_equal(m, Value::integer(0));
     }},
    {"sameas",
     [](Interpreter&, const Value& v, CallArgs& args) -> Result<bool> {
       Value other;
       LS_RETURN_IF_ERROR(arg0(args, "sameas", &other).status());
       if (v.kind() != other.kind()) return false;
       if (v.is_list()) return v.list_ptr() == other.list_ptr();
       if (v.is_dict()) return v.dict_ptr() == other.dict_ptr();
       return values_equal(v, other);
     }},
    {"in",
     [](Interpreter&, const Value& v, CallArgs& args) -> Result<bool> {
       Value seq;
       LS_RETURN_IF_ERROR(arg0(args, "in", &seq).status());
       return contains(seq, v);
     }},
    {"eq", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("==", v, a, "eq"); }},
    {"equalto", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("==", v, a, "equalto"); }},
    {"==", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("==", v, a, "=="); }},
    {"ne", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("!=", v, a, "ne"); }},
    {"!=", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("!=", v, a, "!="); }},
    {"lt", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("<", v, a, "lt"); }},
    {"lessthan", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("<", v, a, "lessthan"); }},
    {"<", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("<", v, a, "<"); }},
    {"le", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("<=", v, a, "le"); }},
    {"<=", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test("<=", v, a, "<="); }},
    {"gt", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test(">", v, a, "gt"); }},
    {"greaterthan", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test(">", v, a, "greaterthan"); }},
    {">", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test(">", v, a, ">"); }},
    {"ge", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test(">=", v, a, "ge"); }},
    {">=", [](Interpreter&, const Value& v, CallArgs& a) { return compare_test(">=", v, a, ">="); }},
    {"filter",
     [](Interpreter&, const Value& v, CallArgs& args) -> Result<bool> {
       LS_RETURN_IF_ERROR(no_args(args, "filter").status());
       return v.is_string() && has_filter(v.as_string());
     }},
    {"test",
     [](Interpreter&, const Value& v, CallArgs& args) -> Result<bool> {
       LS_RETURN_IF_ERROR(no_args(args, "test").status());
       return v.is_string() && has_test(v.as_string());
     }},
};

#undef LS_SIMPLE_TEST

}  // namespace

bool has_test(const std::string& name) {
  for (const TestEntry& t : kTests)
    if (name == t.name) return true;
  return false;
}

Result<bool> call_test(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  for (const TestEntry& t : kTests)
    if (name == t.name) return t.fn(in, input, args);
  return invalid_argument("no test named '" + name + "'");
}

}  // namespace ls::chat
