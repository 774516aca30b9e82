// interpreter_expr.cpp: expression evaluation (names, literals, attribute and item access, calls, filters,
// tests, boolean logic, comparisons) with jinja2's Undefined rules.
#include "chat/interpreter.h"

#include "chat/builtins.h"
#include "chat/operators.h"
#include "chat/py_str.h"

namespace ls::chat {

namespace {

Status undefined_error(const std::string& what) { return invalid_argument("UndefinedError: " + what); }

// Python's slice.indices(): normalised start/stop/step for a sequence of length n.
Status slice_indices(Interpreter& in, const Value& start_v, const Value& stop_v, const Value& step_v, int64_t n,
                     int64_t* start, int64_t* stop, int64_t* step) {
  auto as_index = [](const Value& v, int64_t* out) -> Status {
    if (v.is_int()) {
      *out = v.as_int();
    } else if (v.is_bool()) {
      *out = v.as_bool();
    } else {
      return invalid_argument("slice indices must be integers or None");
    }
    return Status::ok();
  };
  *step = 1;
  if (!step_v.is_none() && !step_v.is_undefined()) LS_RETURN_IF_ERROR(as_index(step_v, step));
  if (*step == 0) return invalid_argument("slice step cannot be zero");
  const bool neg = *step < 0;
  const int64_t lower = neg ? -1 : 0;
  const int64_t upper = neg ? n - 1 : n;
  auto clamp = [&](const Value& v, int64_t dflt, int64_t* out) -> Status {
    if (v.is_none() || v.is_undefined()) {
      *out = dflt;
      return Status::ok();
    }
    int64_t i = 0;
    LS_RETURN_IF_ERROR(as_index(v, &i));
    if (i < 0) {
      i = i < -n ? lower : i + n;
      if (i < lower) i = lower;
    } else if (i > upper) {
      i = upper;
    }
    *out = i;
    return Status::ok();
  };
  LS_RETURN_IF_ERROR(clamp(start_v, neg ? upper : lower, start));
  LS_RETURN_IF_ERROR(clamp(stop_v, neg ? lower : upper, stop));
  (void)in;
  return Status::ok();
}

template <typename Seq, typename Out>
void take_slice(const Seq& seq, int64_t start, int64_t stop, int64_t step, Out& out) {
  if (step > 0) {
    for (int64_t i = start; i < stop; i += step) out.push_back(seq[static_cast<size_t>(i)]);
  } else {
    for (int64_t i = start; i > stop; i += step) out.push_back(seq[static_cast<size_t>(i)]);
  }
}

}  // namespace

Result<Value> Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  LS_RETURN_IF_ERROR(tick());
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName:
      return eval_name(e, scope);
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict:
      return eval_collection(e, scope);
    case ExprKind::kGetAttr: {
      LS_ASSIGN_OR_RETURN(Value obj, eval(*e.a, scope));
      return get_attr(obj, e.name);
    }
    case ExprKind::kGetItem:
      return eval_getitem(e, scope);
    case ExprKind::kSlice:
      return invalid_argument("slice outside of a subscript");
    case ExprKind::kCall:
      return eval_call(e, scope);
    case ExprKind::kFilter:
      return eval_filter(e, scope);
    case ExprKind::kTest:
      return eval_test(e, scope);
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.a, scope));
      return unary_op(e.kind == ExprKind::kNeg ? '-' : '+', v);
    }
    case ExprKind::kNot: {
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.a, scope));
      return Value::boolean(!truthy(v));
    }
    case ExprKind::kBinary:
      return eval_binary(e, scope);
    case ExprKind::kConcat:
      return eval_concat(e, scope);
    case ExprKind::kCompare:
      return eval_compare(e, scope);
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      LS_ASSIGN_OR_RETURN(Value left, eval(*e.a, scope));
      if (truthy(left) == (e.kind == ExprKind::kOr)) return left;
      return eval(*e.b, scope);
    }
    case ExprKind::kCondExpr: {
      LS_ASSIGN_OR_RETURN(Value cond, eval(*e.b, scope));
      if (truthy(cond)) return eval(*e.a, scope);
      if (e.c) return eval(*e.c, scope);
      return Value::undefined();
    }
  }
  return internal_error("unknown expression");
}

Result<Value> Interpreter::eval_name(const Expr& e, const ScopePtr& scope) {
  const Value* v = scope->lookup(e.name);
  return v ? *v : Value::undefined();
}

Result<Value> Interpreter::eval_collection(const Expr& e, const ScopePtr& scope) {
  if (e.kind == ExprKind::kDict) {
    auto d = std::make_shared<Dict>();
    for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
      LS_ASSIGN_OR_RETURN(Value k, eval(*e.args[i], scope));
      LS_ASSIGN_OR_RETURN(Value v, eval(*e.args[i + 1], scope));
      if (k.is_list() || k.is_dict() || k.is_undefined())
        return invalid_argument(std::string("unhashable type: '") + type_name(k) + "'");
      d->set(std::move(k), std::move(v));
    }
    return Value::dict(std::move(d));
  }
  std::vector<Value> items;
  for (const ExprPtr& arg : e.args) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*arg, scope));
    items.push_back(std::move(v));
  }
  return Value::list(std::move(items), e.kind == ExprKind::kTuple ? ListKind::kTuple : ListKind::kList);
}

Result<Value> Interpreter::eval_binary(const Expr& e, const ScopePtr& scope) {
  LS_ASSIGN_OR_RETURN(Value a, eval(*e.a, scope));
  LS_ASSIGN_OR_RETURN(Value b, eval(*e.b, scope));
  return binary_op(*this, e.name, a, b);
}

Result<Value> Interpreter::eval_concat(const Expr& e, const ScopePtr& scope) {
  std::string out;
  for (const ExprPtr& part : e.args) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*part, scope));
    if (!append_str(out, v, limits_.max_output_bytes)) return resource_exhausted("template exceeded its string size limit");
  }
  return Value::string(std::move(out));
}

Result<Value> Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  LS_ASSIGN_OR_RETURN(Value left, eval(*e.a, scope));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    LS_ASSIGN_OR_RETURN(Value right, eval(*e.args[i], scope));
    LS_ASSIGN_OR_RETURN(bool ok, compare_op(e.ops[i], left, right));
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Result<Value> Interpreter::eval_getitem(const Expr& e, const ScopePtr& scope) {
  LS_ASSIGN_OR_RETURN(Value obj, eval(*e.a, scope));
  if (e.b->kind != ExprKind::kSlice) {
    LS_ASSIGN_OR_RETURN(Value key, eval(*e.b, scope));
    return get_item(obj, key);
  }
  Value parts[3];
  for (size_t i = 0; i < 3; ++i)
    if (e.b->args[i]) {
      LS_ASSIGN_OR_RETURN(parts[i], eval(*e.b->args[i], scope));
    }
  if (obj.is_undefined()) return undefined_error("undefined value is not subscriptable");
  const bool is_seq = (obj.is_list() && obj.as_list().kind != ListKind::kIterator) || obj.is_string();
  if (!is_seq) return Value::undefined();
  int64_t start = 0, stop = 0, step = 1;
  if (obj.is_string()) {
    const std::u32string cps = utf8_to_u32(obj.as_string());
    LS_RETURN_IF_ERROR(slice_indices(*this, parts[0], parts[1], parts[2], static_cast<int64_t>(cps.size()), &start, &stop, &step));
    std::u32string out;
    take_slice(cps, start, stop, step, out);
    return Value::string(u32_to_utf8(out));
  }
  const List& list = obj.as_list();
  LS_RETURN_IF_ERROR(slice_indices(*this, parts[0], parts[1], parts[2], static_cast<int64_t>(list.items.size()), &start, &stop, &step));
  std::vector<Value> out;
  take_slice(list.items, start, stop, step, out);
  return Value::list(std::move(out), list.kind);
}

Status Interpreter::eval_args(const Expr& e, const ScopePtr& scope, CallArgs* args) {
  for (const ExprPtr& arg : e.args) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*arg, scope));
    args->positional.push_back(std::move(v));
  }
  for (const auto& [name, arg] : e.kwargs) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*arg, scope));
    args->keyword.emplace_back(name, std::move(v));
  }
  return Status::ok();
}

Result<Value> Interpreter::eval_call(const Expr& e, const ScopePtr& scope) {
  LS_ASSIGN_OR_RETURN(Value callee, eval(*e.a, scope));
  CallArgs args;
  LS_RETURN_IF_ERROR(eval_args(e, scope, &args));
  return call(callee, args);
}

Result<Value> Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) return undefined_error("called an undefined value");
  if (!callee.is_callable()) return invalid_argument(std::string("'") + type_name(callee) + "' object is not callable");
  return callee.as_callable().fn(*this, args);
}

Result<Value> Interpreter::eval_filter(const Expr& e, const ScopePtr& scope) {
  Value input;
  if (e.a) {
    LS_ASSIGN_OR_RETURN(input, eval(*e.a, scope));
  }
  CallArgs args;
  LS_RETURN_IF_ERROR(eval_args(e, scope, &args));
  return apply_filter(e.name, std::move(input), args);
}

Result<Value> Interpreter::eval_test(const Expr& e, const ScopePtr& scope) {
  LS_ASSIGN_OR_RETURN(Value input, eval(*e.a, scope));
  CallArgs args;
  LS_RETURN_IF_ERROR(eval_args(e, scope, &args));
  LS_ASSIGN_OR_RETURN(bool ok, apply_test(e.name, input, args));
  return Value::boolean(ok);
}

Result<Value> Interpreter::apply_filter(const std::string& name, Value input, CallArgs& args) {
  return call_filter(*this, name, std::move(input), args);
}

Result<bool> Interpreter::apply_test(const std::string& name, const Value& input, CallArgs& args) {
  return call_test(*this, name, input, args);
}

Result<Value> Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return undefined_error("'" + name + "' of an undefined value");
  if (std::optional<Value> method = bound_method(obj, name)) return *method;
  if (obj.is_dict()) {
    const Value* v = obj.as_dict().find(std::string_view(name));
    return v ? *v : Value::undefined();
  }
  return Value::undefined();
}

Result<Value> Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return undefined_error("subscript of an undefined value");
  if (obj.is_dict() && !obj.as_dict().is_namespace) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if (obj.is_list() && obj.as_list().kind != ListKind::kIterator && (key.is_int() || key.is_bool())) {
    const auto& items = obj.as_list().items;
    int64_t i = key.is_int() ? key.as_int() : key.as_bool();
    const auto n = static_cast<int64_t>(items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined();
    return items[static_cast<size_t>(i)];
  } else if (obj.is_string() && (key.is_int() || key.is_bool())) {
    const std::u32string cps = utf8_to_u32(obj.as_string());
    int64_t i = key.is_int() ? key.as_int() : key.as_bool();
    const auto n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined();
    std::string out;
    append_utf8(out, cps[static_cast<size_t>(i)]);
    return Value::string(std::move(out));
  }
  if (key.is_string()) {
    if (obj.is_dict() && !obj.as_dict().is_namespace) {
      if (std::optional<Value> method = bound_method(obj, key.as_string())) return *method;
      return Value::undefined();
    }
    return get_attr(obj, key.as_string());
  }
  return Value::undefined();
}

}  // namespace ls::chat
