// interpreter.h: renders a parsed template with jinja2's semantics as transformers configures it
// (ImmutableSandboxedEnvironment, default Undefined, loop controls). It owns the scopes of one render, the
// sandbox limits and the step budget; builtins (filters, tests, methods, globals) call back into it.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/limits.h"
#include "chat/value.h"

namespace ls::chat {

// A variable scope. Loop iterations, macro calls and filter/set blocks each get a child scope; `{% set %}`
// writes to the innermost one, lookups walk outwards.
class Scope {
 public:
  explicit Scope(std::shared_ptr<Scope> parent) : parent_(std::move(parent)) {}
  const Value* lookup(const std::string& name) const;
  void set(const std::string& name, Value value);
  void clear() { vars_.clear(); }

 private:
  std::shared_ptr<Scope> parent_;
  std::vector<std::pair<std::string, Value>> vars_;
};
using ScopePtr = std::shared_ptr<Scope>;

// Supplies the local time strftime_now formats; tests inject a fixed one.
using Clock = std::function<std::tm()>;

class Interpreter {
 public:
  Interpreter(const Limits& limits, Clock clock);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders program with the given top-level variables (globals such as range or raise_exception are added).
  Result<std::string> render(const std::shared_ptr<const Program>& program,
                             const std::vector<std::pair<std::string, Value>>& variables);

  // jinja2's environment.getattr (x.name) and getitem (x[key]) with sandbox rules.
  Result<Value> get_attr(const Value& obj, const std::string& name);
  Result<Value> get_item(const Value& obj, const Value& key);
  Result<Value> call(const Value& callee, CallArgs& args);
  Result<Value> apply_filter(const std::string& name, Value input, CallArgs& args);
  Result<bool> apply_test(const std::string& name, const Value& input, CallArgs& args);

  const Limits& limits() const { return limits_; }
  std::tm now() const { return clock_(); }
  // Fails once a string of `bytes` would exceed the sandbox's string bound.
  Status check_string_size(size_t bytes) const;
  Status check_collection_size(size_t items) const;
  Status tick();
  // Namespaces are the only mutable values; they are cleared after rendering so cycles cannot leak.
  void track_namespace(const DictPtr& ns) { namespaces_.push_back(ns); }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Status exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Status exec(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_if(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_for(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_set(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_call_block(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status exec_filter_block(const Stmt& stmt, const ScopePtr& scope, std::string& out);
  Status assign(const Target& target, Value value, const ScopePtr& scope);
  Status append_output(std::string& out, const Value& v);
  Value make_macro(const Stmt& stmt, const ScopePtr& scope, const Stmt* caller_of);
  Result<Value> call_macro(const Stmt& stmt, const ScopePtr& defining, CallArgs& args);
  Result<Value> apply_filter_chain(const Expr& filter, Value input, const ScopePtr& scope);

  Result<Value> eval(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_name(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_collection(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_binary(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_compare(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_concat(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_getitem(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_call(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_filter(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_test(const Expr& e, const ScopePtr& scope);
  Status eval_args(const Expr& e, const ScopePtr& scope, CallArgs* args);

  Limits limits_;
  Clock clock_;
  std::shared_ptr<const Program> program_;
  ScopePtr globals_;
  std::vector<ScopePtr> captured_scopes_;
  std::vector<DictPtr> namespaces_;
  Flow flow_ = Flow::kNormal;
  int64_t steps_ = 0;
  int64_t loop_iterations_ = 0;
  int call_depth_ = 0;
};

}  // namespace ls::chat
