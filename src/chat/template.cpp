// template.cpp: compile (parse + name checks) and render.
#include "chat/template.h"

#include "chat/builtins.h"
#include "chat/parser.h"

namespace ls::chat {

namespace {

// jinja2 rejects an unknown filter or test when it compiles the template, except inside an if statement or an
// inline if-expression ("soft" frames), where the error waits until the filter runs. Loops, macros, call, filter
// and set blocks open new frames, which are not soft.
Status check_expr(const Expr* e, bool soft);

Status check_exprs(const std::vector<ExprPtr>& v, bool soft) {
  for (const ExprPtr& e : v) LS_RETURN_IF_ERROR(check_expr(e.get(), soft));
  return Status::ok();
}

Status check_expr(const Expr* e, bool soft) {
  if (!e) return Status::ok();
  if (!soft && e->kind == ExprKind::kFilter && !has_filter(e->name))
    return invalid_argument("template uses unknown filter '" + e->name + "' (line " + std::to_string(e->line) + ")");
  if (!soft && e->kind == ExprKind::kTest && !has_test(e->name))
    return invalid_argument("template uses unknown test '" + e->name + "' (line " + std::to_string(e->line) + ")");
  const bool inner_soft = soft || e->kind == ExprKind::kCondExpr;
  LS_RETURN_IF_ERROR(check_expr(e->a.get(), inner_soft));
  LS_RETURN_IF_ERROR(check_expr(e->b.get(), inner_soft));
  LS_RETURN_IF_ERROR(check_expr(e->c.get(), inner_soft));
  LS_RETURN_IF_ERROR(check_exprs(e->args, inner_soft));
  for (const auto& [_, kw] : e->kwargs) LS_RETURN_IF_ERROR(check_expr(kw.get(), inner_soft));
  return Status::ok();
}

Status check_body(const Body& body, bool soft) {
  for (const StmtPtr& s : body) {
    switch (s->kind) {
      case StmtKind::kIf:
        for (const auto& [cond, b] : s->branches) {
          LS_RETURN_IF_ERROR(check_expr(cond.get(), true));
          LS_RETURN_IF_ERROR(check_body(b, true));
        }
        break;
      case StmtKind::kFor:
        LS_RETURN_IF_ERROR(check_expr(s->expr.get(), soft));
        LS_RETURN_IF_ERROR(check_expr(s->cond.get(), false));
        LS_RETURN_IF_ERROR(check_body(s->body, false));
        LS_RETURN_IF_ERROR(check_body(s->else_body, soft));
        break;
      case StmtKind::kOutput:
      case StmtKind::kSet:
        LS_RETURN_IF_ERROR(check_expr(s->expr.get(), soft));
        break;
      case StmtKind::kCallBlock:
        LS_RETURN_IF_ERROR(check_expr(s->expr.get(), soft));
        [[fallthrough]];
      default:
        if (s->kind != StmtKind::kCallBlock) LS_RETURN_IF_ERROR(check_expr(s->expr.get(), false));
        for (const auto& [_, def] : s->params) LS_RETURN_IF_ERROR(check_expr(def.get(), false));
        LS_RETURN_IF_ERROR(check_body(s->body, false));
        break;
    }
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
  LS_RETURN_IF_ERROR(check_body(program->body, false));
  return Template(std::move(program));
}

Result<std::string> Template::render(const std::vector<std::pair<std::string, Value>>& variables,
                                     const RenderOptions& options) const {
  Interpreter interpreter(options.limits, options.clock ? options.clock : Clock(local_time_now));
  return interpreter.render(program_, variables);
}

}  // namespace ls::chat
