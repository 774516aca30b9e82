// interpreter_stmt.cpp: statement execution (output, if, for, set, macro, call and filter blocks, loop
// controls), scopes and the render entry point.
#include "chat/interpreter.h"

#include "chat/builtins.h"

namespace ls::chat {

namespace {

Status limit_error(const std::string& what) { return resource_exhausted("template exceeded its " + what); }

Value make_loop(size_t i, const std::vector<Value>& items, const Value& cycle) {
  auto d = std::make_shared<Dict>();
  const auto n = static_cast<int64_t>(items.size());
  const auto idx = static_cast<int64_t>(i);
  d->set(Value::string("index"), Value::integer(idx + 1));
  d->set(Value::string("index0"), Value::integer(idx));
  d->set(Value::string("revindex"), Value::integer(n - idx));
  d->set(Value::string("revindex0"), Value::integer(n - idx - 1));
  d->set(Value::string("first"), Value::boolean(i == 0));
  d->set(Value::string("last"), Value::boolean(i + 1 == items.size()));
  d->set(Value::string("length"), Value::integer(n));
  d->set(Value::string("depth"), Value::integer(1));
  d->set(Value::string("depth0"), Value::integer(0));
  d->set(Value::string("previtem"), i > 0 ? items[i - 1] : Value::undefined());
  d->set(Value::string("nextitem"), i + 1 < items.size() ? items[i + 1] : Value::undefined());
  d->set(Value::string("cycle"), cycle);
  return Value::dict(std::move(d));
}

}  // namespace

const Value* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent_.get())
    for (const auto& [k, v] : s->vars_)
      if (k == name) return &v;
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars_) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars_.emplace_back(name, std::move(value));
}

Interpreter::Interpreter(const Limits& limits, Clock clock) : limits_(limits), clock_(std::move(clock)) {}

Interpreter::~Interpreter() {
  // Macros hold their defining scope and scopes hold macros; namespaces may hold themselves. Break the cycles.
  for (auto& s : captured_scopes_) s->clear();
  for (auto& ns : namespaces_) ns->entries.clear();
  if (globals_) globals_->clear();
}

Status Interpreter::check_string_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) return limit_error("string size limit");
  return Status::ok();
}

Status Interpreter::check_collection_size(size_t items) const {
  if (items > limits_.max_collection_size) return limit_error("collection size limit");
  return Status::ok();
}

Status Interpreter::tick() {
  if (++steps_ > limits_.max_steps) return limit_error("step limit");
  return Status::ok();
}

Result<std::string> Interpreter::render(const std::shared_ptr<const Program>& program,
                                        const std::vector<std::pair<std::string, Value>>& variables) {
  program_ = program;
  globals_ = std::make_shared<Scope>(nullptr);
  install_globals(*globals_);
  for (const auto& [name, value] : variables) globals_->set(name, value);
  auto top = std::make_shared<Scope>(globals_);
  captured_scopes_.push_back(top);
  std::string out;
  LS_RETURN_IF_ERROR(exec_body(program->body, top, out));
  return out;
}

Status Interpreter::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const StmtPtr& stmt : body) {
    LS_RETURN_IF_ERROR(exec(*stmt, scope, out));
    if (flow_ != Flow::kNormal) break;
  }
  return Status::ok();
}

Status Interpreter::append_output(std::string& out, const Value& v) {
  if (v.is_list() && v.as_list().kind == ListKind::kIterator)
    return unsupported("printing a generator (the result of select/map/reverse) is not supported");
  if (!append_str(out, v, limits_.max_output_bytes)) return limit_error("output size limit");
  return Status::ok();
}

Status Interpreter::exec(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  LS_RETURN_IF_ERROR(tick());
  switch (stmt.kind) {
    case StmtKind::kText:
      out += stmt.text;
      if (out.size() > limits_.max_output_bytes) return limit_error("output size limit");
      return Status::ok();
    case StmtKind::kOutput: {
      LS_ASSIGN_OR_RETURN(Value v, eval(*stmt.expr, scope));
      return append_output(out, v);
    }
    case StmtKind::kIf:
      return exec_if(stmt, scope, out);
    case StmtKind::kFor:
      return exec_for(stmt, scope, out);
    case StmtKind::kSet:
    case StmtKind::kSetBlock:
      return exec_set(stmt, scope, out);
    case StmtKind::kMacro:
      scope->set(stmt.name, make_macro(stmt, scope, nullptr));
      captured_scopes_.push_back(scope);
      return Status::ok();
    case StmtKind::kCallBlock:
      return exec_call_block(stmt, scope, out);
    case StmtKind::kFilterBlock:
      return exec_filter_block(stmt, scope, out);
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return Status::ok();
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return Status::ok();
    case StmtKind::kScope:
      return exec_body(stmt.body, scope, out);
  }
  return internal_error("unknown statement");
}

Status Interpreter::exec_if(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  for (const auto& [cond, body] : stmt.branches) {
    if (cond) {
      LS_ASSIGN_OR_RETURN(Value v, eval(*cond, scope));
      if (!truthy(v)) continue;
    }
    return exec_body(body, scope, out);
  }
  return Status::ok();
}

Status Interpreter::exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  LS_ASSIGN_OR_RETURN(Value iterable, eval(*stmt.expr, scope));
  LS_ASSIGN_OR_RETURN(std::vector<Value> items, iterable_items(iterable));
  if (stmt.cond) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto filter_scope = std::make_shared<Scope>(scope);
      LS_RETURN_IF_ERROR(assign(stmt.target, item, filter_scope));
      LS_ASSIGN_OR_RETURN(Value keep, eval(*stmt.cond, filter_scope));
      if (truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec_body(stmt.else_body, scope, out);
  auto index = std::make_shared<size_t>(0);
  const Value cycle = Value::callable("cycle", [index](Interpreter&, CallArgs& args) -> Result<Value> {
    if (args.positional.empty()) return invalid_argument("no items for cycling given");
    return args.positional[*index % args.positional.size()];
  });
  for (size_t i = 0; i < items.size(); ++i) {
    if (++loop_iterations_ > limits_.max_loop_iterations) return limit_error("loop iteration limit");
    *index = i;
    auto body_scope = std::make_shared<Scope>(scope);
    LS_RETURN_IF_ERROR(assign(stmt.target, items[i], body_scope));
    body_scope->set("loop", make_loop(i, items, cycle));
    LS_RETURN_IF_ERROR(exec_body(stmt.body, body_scope, out));
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  return Status::ok();
}

Status Interpreter::assign(const Target& target, Value value, const ScopePtr& scope) {
  if (!target.attr.empty()) {
    const Value* ns = scope->lookup(target.names[0]);
    if (!ns || !ns->is_dict() || !ns->as_dict().is_namespace)
      return invalid_argument("cannot assign attribute on non-namespace object");
    if (!target.attr.empty() && target.attr[0] == '_')
      return invalid_argument("chat templates cannot store underscore-prefixed attributes on a namespace");
    ns->dict_ptr()->set(Value::string(target.attr), std::move(value));
    return Status::ok();
  }
  if (!target.is_tuple) {
    scope->set(target.names[0], std::move(value));
    return Status::ok();
  }
  LS_ASSIGN_OR_RETURN(std::vector<Value> parts, iterable_items(value));
  if (parts.size() != target.names.size()) {
    return invalid_argument(parts.size() < target.names.size()
                                ? "not enough values to unpack (expected " + std::to_string(target.names.size()) +
                                      ", got " + std::to_string(parts.size()) + ")"
                                : "too many values to unpack (expected " + std::to_string(target.names.size()) + ")");
  }
  for (size_t i = 0; i < parts.size(); ++i) scope->set(target.names[i], std::move(parts[i]));
  return Status::ok();
}

Status Interpreter::exec_set(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  if (stmt.kind == StmtKind::kSet) {
    LS_ASSIGN_OR_RETURN(Value v, eval(*stmt.expr, scope));
    return assign(stmt.target, std::move(v), scope);
  }
  std::string captured;
  LS_RETURN_IF_ERROR(exec_body(stmt.body, std::make_shared<Scope>(scope), captured));
  Value v = Value::string(std::move(captured));
  if (stmt.expr) {
    LS_ASSIGN_OR_RETURN(v, apply_filter_chain(*stmt.expr, std::move(v), scope));
  }
  return assign(stmt.target, std::move(v), scope);
}

Result<Value> Interpreter::apply_filter_chain(const Expr& filter, Value input, const ScopePtr& scope) {
  // The chain is nested as filter(filter(null)); apply the innermost first.
  if (filter.a) {
    LS_ASSIGN_OR_RETURN(input, apply_filter_chain(*filter.a, std::move(input), scope));
  }
  CallArgs args;
  LS_RETURN_IF_ERROR(eval_args(filter, scope, &args));
  return apply_filter(filter.name, std::move(input), args);
}

Status Interpreter::exec_filter_block(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  std::string captured;
  LS_RETURN_IF_ERROR(exec_body(stmt.body, std::make_shared<Scope>(scope), captured));
  LS_ASSIGN_OR_RETURN(Value v, apply_filter_chain(*stmt.expr, Value::string(std::move(captured)), scope));
  return append_output(out, v);
}

Value Interpreter::make_macro(const Stmt& stmt, const ScopePtr& scope, const Stmt* /*caller_of*/) {
  const Stmt* def = &stmt;
  ScopePtr defining = scope;
  return Value::callable(stmt.name.empty() ? "caller" : stmt.name,
                         [def, defining](Interpreter& in, CallArgs& args) { return in.call_macro(*def, defining, args); });
}

Result<Value> Interpreter::call_macro(const Stmt& stmt, const ScopePtr& defining, CallArgs& args) {
  if (call_depth_ >= limits_.max_call_depth) return limit_error("macro recursion limit");
  auto scope = std::make_shared<Scope>(defining);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < stmt.params.size())
      scope->set(stmt.params[i].first, args.positional[i]);
    else
      varargs.push_back(args.positional[i]);
  }
  auto kwargs = std::make_shared<Dict>();
  for (auto& [name, value] : args.keyword) {
    bool is_param = false;
    for (size_t i = 0; i < stmt.params.size(); ++i) {
      if (stmt.params[i].first != name) continue;
      if (i < args.positional.size()) return invalid_argument("macro '" + stmt.name + "' got multiple values for '" + name + "'");
      is_param = true;
    }
    if (is_param || name == "caller")
      scope->set(name, value);
    else
      kwargs->set(Value::string(name), value);
  }
  for (size_t i = args.positional.size(); i < stmt.params.size(); ++i) {
    const auto& [name, def] = stmt.params[i];
    bool given = false;
    for (const auto& kw : args.keyword) given = given || kw.first == name;
    if (given) continue;
    if (def) {
      LS_ASSIGN_OR_RETURN(Value v, eval(*def, scope));
      scope->set(name, std::move(v));
    } else {
      scope->set(name, Value::undefined());
    }
  }
  scope->set("varargs", Value::list(std::move(varargs), ListKind::kTuple));
  scope->set("kwargs", Value::dict(std::move(kwargs)));
  ++call_depth_;
  std::string out;
  const Flow saved = flow_;
  flow_ = Flow::kNormal;
  Status st = exec_body(stmt.body, scope, out);
  flow_ = saved;
  --call_depth_;
  LS_RETURN_IF_ERROR(st);
  return Value::string(std::move(out));
}

Status Interpreter::exec_call_block(const Stmt& stmt, const ScopePtr& scope, std::string& out) {
  // The block's body becomes a macro named caller, passed to the called macro.
  const Value caller = make_macro(stmt, scope, &stmt);
  captured_scopes_.push_back(scope);
  const Expr& call = *stmt.expr;
  LS_ASSIGN_OR_RETURN(Value callee, eval(*call.a, scope));
  CallArgs args;
  LS_RETURN_IF_ERROR(eval_args(call, scope, &args));
  args.keyword.emplace_back("caller", caller);
  LS_ASSIGN_OR_RETURN(Value result, this->call(callee, args));
  return append_output(out, result);
}

}  // namespace ls::chat
