// template.cpp: compile (parse + name checks) and render.
#include "chat/template.h"

#include "chat/builtins.h"
#include "chat/parser.h"

namespace ls::chat {

namespace {

Status check_expr(const Expr* e);

Status check_exprs(const std::vector<ExprPtr>& v) {
  for (const ExprPtr& e : v) LS_RETURN_IF_ERROR(check_expr(e.get()));
  return Status::ok();
}

Status check_expr(const Expr* e) {
  if (!e) return Status::ok();
  if (e->kind == ExprKind::kFilter && !has_filter(e->name))
    return invalid_argument("template uses unknown filter '" + e->name + "' (line " + std::to_string(e->line) + ")");
  if (e->kind == ExprKind::kTest && !has_test(e->name))
    return invalid_argument("template uses unknown test '" + e->name + "' (line " + std::to_string(e->line) + ")");
  LS_RETURN_IF_ERROR(check_expr(e->a.get()));
  LS_RETURN_IF_ERROR(check_expr(e->b.get()));
  LS_RETURN_IF_ERROR(check_expr(e->c.get()));
  LS_RETURN_IF_ERROR(check_exprs(e->args));
  for (const auto& [_, kw] : e->kwargs) LS_RETURN_IF_ERROR(check_expr(kw.get()));
  return Status::ok();
}

Status check_body(const Body& body) {
  for (const StmtPtr& s : body) {
    LS_RETURN_IF_ERROR(check_expr(s->expr.get()));
    LS_RETURN_IF_ERROR(check_expr(s->cond.get()));
    for (const auto& [cond, b] : s->branches) {
      LS_RETURN_IF_ERROR(check_expr(cond.get()));
      LS_RETURN_IF_ERROR(check_body(b));
    }
    for (const auto& [_, def] : s->params) LS_RETURN_IF_ERROR(check_expr(def.get()));
    LS_RETURN_IF_ERROR(check_body(s->body));
    LS_RETURN_IF_ERROR(check_body(s->else_body));
  }
  return Status::ok();
}

}  // namespace

std::tm local_time_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

Result<Template> Template::compile(std::string_view source) {
  LS_ASSIGN_OR_RETURN(std::shared_ptr<const Program> program, parse_template(source));
  LS_RETURN_IF_ERROR(check_body(program->body));
  return Template(std::move(program));
}

Result<std::string> Template::render(const std::vector<std::pair<std::string, Value>>& variables,
                                     const RenderOptions& options) const {
  Interpreter interpreter(options.limits, options.clock ? options.clock : Clock(local_time_now));
  return interpreter.render(program_, variables);
}

}  // namespace ls::chat
