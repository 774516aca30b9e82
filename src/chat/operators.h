// operators.h: Python semantics of the template operators (+ - * / // % ** unary -/+, comparisons, `in`),
// including int overflow checks and jinja2's Undefined errors.
#pragma once

#include <string>

#include "chat/value.h"

namespace ls::chat {

Result<Value> unary_op(char op, const Value& v);
Result<Value> binary_op(Interpreter& in, const std::string& op, const Value& a, const Value& b);
// op is one of == != < <= > >= in notin.
Result<bool> compare_op(const std::string& op, const Value& a, const Value& b);
// Python's `needle in haystack`.
Result<bool> contains(const Value& haystack, const Value& needle);

}  // namespace ls::chat
