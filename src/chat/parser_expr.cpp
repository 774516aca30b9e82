// parser_expr.cpp: expression grammar (jinja2's parse_tuple ... parse_primary, filters, tests, calls, subscripts).
#include <cerrno>
#include <cstdlib>

#include "chat/parser_impl.h"

namespace ls::chat {

namespace {

// An integer token's value: decimal, or 0x/0o/0b with the prefix kept by the lexer.
bool parse_integer_literal(const std::string& text, int64_t* out) {
  std::string digits = text;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0') {
    const char b = static_cast<char>(digits[1] | 0x20);
    base = b == 'x' ? 16 : b == 'o' ? 8 : b == 'b' ? 2 : 10;
    if (base != 10) digits = digits.substr(2);
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(digits.c_str(), &end, base);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

bool is_compare_op(const Token& t) {
  if (t.type != TokenType::kOperator) return false;
  return t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=";
}

}  // namespace

ExprPtr Parser::make(ExprKind kind) const {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = cur().line;
  return e;
}

Result<ExprPtr> Parser::parse_expression(bool with_condexpr) {
  LS_RETURN_IF_ERROR(enter());
  auto r = with_condexpr ? parse_condexpr() : parse_or();
  leave();
  return r;
}

Result<ExprPtr> Parser::parse_tuple(bool with_condexpr, std::string_view extra_end, bool explicit_parens) {
  auto e = make(ExprKind::kTuple);
  bool is_tuple = false;
  while (true) {
    if (!e->args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    const bool at_end = cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || is_op(")") ||
                        (!extra_end.empty() && is_name(extra_end));
    if (at_end) break;
    LS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(with_condexpr));
    e->args.push_back(std::move(item));
    if (!is_op(",")) break;
    is_tuple = true;
  }
  if (!is_tuple) {
    if (!e->args.empty()) return std::move(e->args[0]);
    if (!explicit_parens) return fail("expected an expression, got '" + cur().text + "'");
  }
  return e;
}

Result<ExprPtr> Parser::parse_condexpr() {
  LS_ASSIGN_OR_RETURN(ExprPtr expr, parse_or());
  int chain = 0;
  while (skip_name("if")) {
    LS_RETURN_IF_ERROR(enter());
    ++chain;
    auto cond = make(ExprKind::kCondExpr);
    LS_ASSIGN_OR_RETURN(cond->b, parse_or());
    if (skip_name("else")) {
      LS_RETURN_IF_ERROR(enter());
      auto r = parse_condexpr();
      leave();
      if (!r.is_ok()) return r.status();
      cond->c = std::move(r).value();
    }
    cond->a = std::move(expr);
    expr = std::move(cond);
  }
  depth_ -= chain;
  return expr;
}

template <typename Operand, typename Op>
Result<ExprPtr> Parser::parse_left_chain(ExprKind kind, Operand operand, Op op) {
  LS_ASSIGN_OR_RETURN(ExprPtr left, operand());
  int chain = 0;
  while (std::optional<std::string> name = op()) {
    LS_RETURN_IF_ERROR(enter());
    ++chain;
    auto e = make(kind);
    e->name = std::move(*name);
    e->a = std::move(left);
    LS_ASSIGN_OR_RETURN(e->b, operand());
    left = std::move(e);
  }
  depth_ -= chain;
  return left;
}

std::optional<std::string> Parser::take_op(std::initializer_list<std::string_view> ops) {
  for (std::string_view op : ops) {
    if (is_op(op)) {
      std::string text = cur().text;
      next();
      return text;
    }
  }
  return std::nullopt;
}

Result<ExprPtr> Parser::parse_or() {
  return parse_left_chain(ExprKind::kOr, [&] { return parse_and(); }, [&] {
    return skip_name("or") ? std::optional<std::string>(std::string()) : std::nullopt;
  });
}

Result<ExprPtr> Parser::parse_and() {
  return parse_left_chain(ExprKind::kAnd, [&] { return parse_not(); }, [&] {
    return skip_name("and") ? std::optional<std::string>(std::string()) : std::nullopt;
  });
}

Result<ExprPtr> Parser::parse_not() {
  if (is_name("not")) {
    auto e = make(ExprKind::kNot);
    next();
    LS_RETURN_IF_ERROR(enter());
    auto r = parse_not();
    leave();
    if (!r.is_ok()) return r.status();
    e->a = std::move(r).value();
    return e;
  }
  return parse_compare();
}

Result<ExprPtr> Parser::parse_compare() {
  LS_ASSIGN_OR_RETURN(ExprPtr expr, parse_math1());
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (is_compare_op(cur())) {
      op = cur().text;
      next();
    } else if (skip_name("in")) {
      op = "in";
    } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
      next();
      next();
      op = "notin";
    } else {
      break;
    }
    if (!cmp) {
      cmp = make(ExprKind::kCompare);
      cmp->a = std::move(expr);
    }
    LS_ASSIGN_OR_RETURN(ExprPtr operand, parse_math1());
    cmp->ops.push_back(op);
    cmp->args.push_back(std::move(operand));
  }
  return cmp ? std::move(cmp) : std::move(expr);
}

Result<ExprPtr> Parser::parse_math1() {
  return parse_left_chain(ExprKind::kBinary, [&] { return parse_concat(); }, [&] { return take_op({"+", "-"}); });
}

Result<ExprPtr> Parser::parse_concat() {
  LS_ASSIGN_OR_RETURN(ExprPtr first, parse_math2());
  if (!is_op("~")) return first;
  auto e = make(ExprKind::kConcat);
  e->args.push_back(std::move(first));
  while (skip_op("~")) {
    LS_ASSIGN_OR_RETURN(ExprPtr part, parse_math2());
    e->args.push_back(std::move(part));
  }
  return e;
}

Result<ExprPtr> Parser::parse_math2() {
  return parse_left_chain(ExprKind::kBinary, [&] { return parse_pow(); },
                          [&] { return take_op({"*", "/", "//", "%"}); });
}

Result<ExprPtr> Parser::parse_pow() {
  return parse_left_chain(ExprKind::kBinary, [&] { return parse_unary(true); }, [&] { return take_op({"**"}); });
}

Result<ExprPtr> Parser::parse_unary(bool with_filter) {
  LS_RETURN_IF_ERROR(enter());
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    node = make(is_op("-") ? ExprKind::kNeg : ExprKind::kPos);
    next();
    auto r = parse_unary(false);
    if (!r.is_ok()) {
      leave();
      return r.status();
    }
    node->a = std::move(r).value();
  } else {
    auto r = parse_primary();
    if (!r.is_ok()) {
      leave();
      return r.status();
    }
    node = std::move(r).value();
  }
  leave();
  LS_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
  if (with_filter) {
    LS_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
  }
  return node;
}

Result<ExprPtr> Parser::parse_primary() {
  const Token& t = cur();
  auto lit = make(ExprKind::kLiteral);
  switch (t.type) {
    case TokenType::kName:
      if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
        lit->literal = Value::boolean(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        lit->literal = Value::none();
      } else {
        lit->kind = ExprKind::kName;
        lit->name = t.text;
      }
      next();
      return lit;
    case TokenType::kString: {
      std::string s;
      while (cur().type == TokenType::kString) {
        s += cur().text;
        next();
      }
      lit->literal = Value::string(std::move(s));
      return lit;
    }
    case TokenType::kInteger: {
      int64_t v = 0;
      if (!parse_integer_literal(t.text, &v)) return fail("integer literal out of range: " + t.text);
      lit->literal = Value::integer(v);
      next();
      return lit;
    }
    case TokenType::kFloat:
      lit->literal = Value::number(std::strtod(t.text.c_str(), nullptr));
      next();
      return lit;
    case TokenType::kOperator:
      if (t.text == "(") {
        next();
        LS_ASSIGN_OR_RETURN(ExprPtr inner, parse_tuple(true, {}, true));
        LS_RETURN_IF_ERROR(expect_op(")"));
        return inner;
      }
      if (t.text == "[") return parse_list();
      if (t.text == "{") return parse_dict();
      break;
    default:
      break;
  }
  return fail("unexpected '" + (t.type == TokenType::kEof ? std::string("end of template") : t.text) + "'");
}

Result<ExprPtr> Parser::parse_list() {
  auto e = make(ExprKind::kList);
  LS_RETURN_IF_ERROR(expect_op("["));
  while (!is_op("]")) {
    if (!e->args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    if (is_op("]")) break;
    LS_ASSIGN_OR_RETURN(ExprPtr item, parse_expression());
    e->args.push_back(std::move(item));
  }
  LS_RETURN_IF_ERROR(expect_op("]"));
  return e;
}

Result<ExprPtr> Parser::parse_dict() {
  auto e = make(ExprKind::kDict);
  LS_RETURN_IF_ERROR(expect_op("{"));
  while (!is_op("}")) {
    if (!e->args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    if (is_op("}")) break;
    LS_ASSIGN_OR_RETURN(ExprPtr key, parse_expression());
    LS_RETURN_IF_ERROR(expect_op(":"));
    LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression());
    e->args.push_back(std::move(key));
    e->args.push_back(std::move(value));
  }
  LS_RETURN_IF_ERROR(expect_op("}"));
  return e;
}

Result<ExprPtr> Parser::parse_postfix(ExprPtr node) {
  int chain = 0;
  while (true) {
    LS_RETURN_IF_ERROR(enter());
    ++chain;
    if (is_op(".") || is_op("[")) {
      LS_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
    } else if (is_op("(")) {
      auto call = make(ExprKind::kCall);
      call->a = std::move(node);
      LS_RETURN_IF_ERROR(parse_call_args(call.get()));
      node = std::move(call);
    } else {
      depth_ -= chain;
      return node;
    }
  }
}

Result<ExprPtr> Parser::parse_filter_expr(ExprPtr node) {
  int chain = 0;
  while (true) {
    LS_RETURN_IF_ERROR(enter());
    ++chain;
    if (is_op("|")) {
      LS_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), false));
    } else if (is_name("is")) {
      LS_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
    } else if (is_op("(")) {
      auto call = make(ExprKind::kCall);
      call->a = std::move(node);
      LS_RETURN_IF_ERROR(parse_call_args(call.get()));
      node = std::move(call);
    } else {
      depth_ -= chain;
      return node;
    }
  }
}

Result<ExprPtr> Parser::parse_subscript(ExprPtr node) {
  if (skip_op(".")) {
    const Token& t = cur();
    if (t.type == TokenType::kName) {
      auto e = make(ExprKind::kGetAttr);
      e->a = std::move(node);
      e->name = t.text;
      next();
      return e;
    }
    if (t.type != TokenType::kInteger) return fail("expected name or number after '.'");
    auto e = make(ExprKind::kGetItem);
    e->a = std::move(node);
    LS_ASSIGN_OR_RETURN(e->b, parse_primary());
    return e;
  }
  LS_RETURN_IF_ERROR(expect_op("["));
  auto e = make(ExprKind::kGetItem);
  e->a = std::move(node);
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) LS_RETURN_IF_ERROR(expect_op(","));
    LS_ASSIGN_OR_RETURN(ExprPtr arg, parse_subscribed());
    args.push_back(std::move(arg));
  }
  LS_RETURN_IF_ERROR(expect_op("]"));
  if (args.empty()) return fail("expected a subscript");
  if (args.size() == 1) {
    e->b = std::move(args[0]);
  } else {
    e->b = make(ExprKind::kTuple);
    e->b->args = std::move(args);
  }
  return e;
}

Result<ExprPtr> Parser::parse_subscribed() {
  auto slice = make(ExprKind::kSlice);
  if (skip_op(":")) {
    slice->args.push_back(nullptr);
  } else {
    LS_ASSIGN_OR_RETURN(ExprPtr first, parse_expression());
    if (!skip_op(":")) return first;
    slice->args.push_back(std::move(first));
  }
  auto optional_part = [&]() -> Result<ExprPtr> {
    if (is_op("]") || is_op(",")) return ExprPtr();
    return parse_expression();
  };
  if (is_op(":")) {
    slice->args.push_back(nullptr);
  } else {
    LS_ASSIGN_OR_RETURN(ExprPtr stop, optional_part());
    slice->args.push_back(std::move(stop));
  }
  if (skip_op(":")) {
    LS_ASSIGN_OR_RETURN(ExprPtr step, optional_part());
    slice->args.push_back(std::move(step));
  } else {
    slice->args.push_back(nullptr);
  }
  return slice;
}

Status Parser::parse_call_args(Expr* call) {
  LS_RETURN_IF_ERROR(expect_op("("));
  bool require_comma = false;
  while (!is_op(")")) {
    if (require_comma) {
      LS_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;
    }
    if (is_op("*") || is_op("**")) return unsupported("*args and **kwargs in calls are not supported");
    if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == "=") {
      std::string key = cur().text;
      next();
      next();
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression());
      call->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (!call->kwargs.empty()) return fail("invalid syntax for function call expression");
      LS_ASSIGN_OR_RETURN(ExprPtr value, parse_expression());
      call->args.push_back(std::move(value));
    }
    require_comma = true;
  }
  return expect_op(")");
}

Result<std::string> Parser::parse_dotted_name() {
  if (cur().type != TokenType::kName) return fail("expected a name, got '" + cur().text + "'");
  std::string name = cur().text;
  next();
  while (skip_op(".")) {
    if (cur().type != TokenType::kName) return fail("expected a name after '.'");
    name += "." + cur().text;
    next();
  }
  return name;
}

Result<ExprPtr> Parser::parse_filter(ExprPtr node, bool start_inline) {
  int chain = 0;
  while (is_op("|") || start_inline) {
    LS_RETURN_IF_ERROR(enter());
    ++chain;
    if (!start_inline) next();
    start_inline = false;
    auto f = make(ExprKind::kFilter);
    LS_ASSIGN_OR_RETURN(f->name, parse_dotted_name());
    if (is_op("(")) LS_RETURN_IF_ERROR(parse_call_args(f.get()));
    f->a = std::move(node);
    node = std::move(f);
  }
  depth_ -= chain;
  return node;
}

Result<ExprPtr> Parser::parse_test(ExprPtr node) {
  next();  // 'is'
  const bool negated = skip_name("not");
  auto t = make(ExprKind::kTest);
  LS_ASSIGN_OR_RETURN(t->name, parse_dotted_name());
  const TokenType type = cur().type;
  if (is_op("(")) {
    LS_RETURN_IF_ERROR(parse_call_args(t.get()));
  } else if ((type == TokenType::kName || type == TokenType::kString || type == TokenType::kInteger ||
              type == TokenType::kFloat || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) return fail("you cannot chain multiple tests with is");
    LS_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
    LS_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
    t->args.push_back(std::move(arg));
  }
  t->a = std::move(node);
  if (!negated) return t;
  auto n = make(ExprKind::kNot);
  n->a = std::move(t);
  return n;
}

}  // namespace ls::chat
