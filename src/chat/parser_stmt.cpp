// parser_stmt.cpp: statement grammar (if/for/set/macro/call/filter/break/continue/generation) and the token
// stream helpers.
#include "chat/parser.h"

#include "chat/parser_impl.h"

namespace ls::chat {

namespace {

constexpr int kMaxNesting = 150;

}  // namespace

bool Parser::skip_op(std::string_view op) {
  if (!is_op(op)) return false;
  next();
  return true;
}

bool Parser::skip_name(std::string_view name) {
  if (!is_name(name)) return false;
  next();
  return true;
}

Status Parser::fail(const std::string& message) const {
  return invalid_argument("template syntax error at line " + std::to_string(cur().line) + ": " + message);
}

Status Parser::expect_op(std::string_view op) {
  if (skip_op(op)) return Status::ok();
  return fail("expected '" + std::string(op) + "', got '" +
              (cur().type == TokenType::kEof ? std::string("end of template") : cur().text) + "'");
}

Status Parser::expect_name(std::string_view name) {
  if (skip_name(name)) return Status::ok();
  return fail("expected '" + std::string(name) + "', got '" + cur().text + "'");
}

Status Parser::expect_type(TokenType type, const char* what) {
  if (cur().type != type) return fail(std::string("expected ") + what + ", got '" + cur().text + "'");
  next();
  return Status::ok();
}

Status Parser::enter() {
  if (++depth_ > kMaxNesting) {
    --depth_;
    return invalid_argument("template nests too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
  }
  return Status::ok();
}

Result<Program> Parser::parse_program() {
  Program program;
  std::string found;
  LS_RETURN_IF_ERROR(parse_body(&program.body, {}, &found));
  if (cur().type != TokenType::kEof) return fail("unexpected '" + cur().text + "'");
  return program;
}

// Parses statements until a {% NAME %} with NAME in end_names (the block begin and the name are consumed and the
// name stored in *found), or the end of the template when end_names is empty.
Status Parser::parse_body(Body* out, std::initializer_list<std::string_view> end_names, std::string* found) {
  LS_RETURN_IF_ERROR(enter());
  while (true) {
    const Token& t = cur();
    if (t.type == TokenType::kEof) {
      leave();
      if (end_names.size() == 0) return Status::ok();
      return fail("unexpected end of template, expected '" + std::string(*end_names.begin()) + "'");
    }
    if (t.type == TokenType::kData) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kText;
      s->line = t.line;
      s->text = t.text;
      out->push_back(std::move(s));
      next();
    } else if (t.type == TokenType::kVarBegin) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::kOutput;
      s->line = t.line;
      next();
      LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
      LS_RETURN_IF_ERROR(expect_type(TokenType::kVarEnd, "'}}'"));
      out->push_back(std::move(s));
    } else if (t.type == TokenType::kBlockBegin) {
      const Token& name = peek();
      for (std::string_view end : end_names) {
        if (name.type == TokenType::kName && name.text == end) {
          *found = name.text;
          next();
          next();
          leave();
          return Status::ok();
        }
      }
      next();
      LS_RETURN_IF_ERROR(parse_statement(out));
    } else {
      return fail("unexpected '" + t.text + "'");
    }
  }
}

Status Parser::parse_statement(Body* out) {
  if (cur().type != TokenType::kName) return fail("tag name expected");
  const std::string keyword = cur().text;
  const int line = cur().line;
  Result<StmtPtr> stmt = Status(ErrorCode::kInternal, "unreachable");
  if (keyword == "if") {
    stmt = parse_if();
  } else if (keyword == "for") {
    stmt = parse_for();
  } else if (keyword == "set") {
    stmt = parse_set();
  } else if (keyword == "macro") {
    stmt = parse_macro();
  } else if (keyword == "call") {
    stmt = parse_call_block();
  } else if (keyword == "filter") {
    stmt = parse_filter_block();
  } else if (keyword == "generation") {
    stmt = parse_generation();
  } else if (keyword == "break" || keyword == "continue") {
    if (loop_depth_ == 0) return fail("'" + keyword + "' outside of a loop");
    next();
    auto s = std::make_unique<Stmt>();
    s->kind = keyword == "break" ? StmtKind::kBreak : StmtKind::kContinue;
    s->line = line;
    LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
    stmt = std::move(s);
  } else if (keyword == "extends" || keyword == "include" || keyword == "import" || keyword == "from" ||
             keyword == "block" || keyword == "with" || keyword == "autoescape" || keyword == "do" ||
             keyword == "trans") {
    return unsupported("template statement '" + keyword + "' is not supported (line " + std::to_string(line) + ")");
  } else {
    return fail("encountered unknown tag '" + keyword + "'");
  }
  if (!stmt.is_ok()) return stmt.status();
  stmt.value()->line = line;
  out->push_back(std::move(stmt).value());
  return Status::ok();
}

// Parses a body up to {% end_name %} and the closing %}.
Status Parser::end_block(std::string_view end_name, Body* body) {
  std::string found;
  LS_RETURN_IF_ERROR(parse_body(body, {end_name}, &found));
  return expect_type(TokenType::kBlockEnd, "'%}'");
}

Status Parser::end_block_outside_loops(std::string_view end_name, Body* body) {
  const int saved_loops = loop_depth_;
  loop_depth_ = 0;
  Status st = end_block(end_name, body);
  loop_depth_ = saved_loops;
  return st;
}

Result<StmtPtr> Parser::parse_if() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kIf;
  next();  // if
  while (true) {
    LS_ASSIGN_OR_RETURN(ExprPtr cond, parse_tuple(false));
    LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
    Body body;
    std::string found;
    LS_RETURN_IF_ERROR(parse_body(&body, {"elif", "else", "endif"}, &found));
    s->branches.emplace_back(std::move(cond), std::move(body));
    if (found == "elif") continue;
    if (found == "else") {
      LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
      Body else_body;
      LS_RETURN_IF_ERROR(end_block("endif", &else_body));
      s->branches.emplace_back(nullptr, std::move(else_body));
      return s;
    }
    LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
    return s;
  }
}

Status Parser::parse_target(Target* target, bool with_namespace) {
  if (with_namespace && cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
      peek().text == ".") {
    target->names.push_back(cur().text);
    next();
    next();
    if (cur().type != TokenType::kName) return fail("expected an attribute name");
    target->attr = cur().text;
    next();
    return Status::ok();
  }
  const bool parens = skip_op("(");
  while (true) {
    if (cur().type != TokenType::kName) return fail("can't assign to '" + cur().text + "'");
    const std::string& n = cur().text;
    if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
      return fail("can't assign to a constant");
    target->names.push_back(n);
    next();
    if (!skip_op(",")) break;
    target->is_tuple = true;
    if (cur().type != TokenType::kName) break;
  }
  if (parens) {
    LS_RETURN_IF_ERROR(expect_op(")"));
    target->is_tuple = target->is_tuple || false;
  }
  return Status::ok();
}

Result<StmtPtr> Parser::parse_for() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kFor;
  next();  // for
  LS_RETURN_IF_ERROR(parse_target(&s->target, false));
  LS_RETURN_IF_ERROR(expect_name("in"));
  LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, "recursive"));
  if (skip_name("if")) {
    LS_ASSIGN_OR_RETURN(s->cond, parse_expression());
  }
  if (is_name("recursive")) return unsupported("recursive for loops are not supported");
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  std::string found;
  ++loop_depth_;
  Status st = parse_body(&s->body, {"endfor", "else"}, &found);
  --loop_depth_;
  LS_RETURN_IF_ERROR(st);
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  if (found == "else") LS_RETURN_IF_ERROR(end_block("endfor", &s->else_body));
  return s;
}

Result<StmtPtr> Parser::parse_set() {
  auto s = std::make_unique<Stmt>();
  next();  // set
  LS_RETURN_IF_ERROR(parse_target(&s->target, true));
  if (skip_op("=")) {
    s->kind = StmtKind::kSet;
    LS_ASSIGN_OR_RETURN(s->expr, parse_tuple(true));
    LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
    return s;
  }
  s->kind = StmtKind::kSetBlock;
  if (!s->target.attr.empty() || s->target.is_tuple) return fail("block set needs a single name");
  if (is_op("|")) {
    LS_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, false));
  }
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  LS_RETURN_IF_ERROR(end_block("endset", &s->body));
  return s;
}

Status Parser::parse_signature(std::vector<std::pair<std::string, ExprPtr>>* params) {
  LS_RETURN_IF_ERROR(expect_op("("));
  bool have_default = false;
  while (!is_op(")")) {
    if (!params->empty()) LS_RETURN_IF_ERROR(expect_op(","));
    if (is_op(")")) break;
    if (cur().type != TokenType::kName) return fail("expected a parameter name");
    std::string name = cur().text;
    next();
    ExprPtr def;
    if (skip_op("=")) {
      LS_ASSIGN_OR_RETURN(def, parse_expression());
      have_default = true;
    } else if (have_default) {
      return fail("non-default argument follows default argument");
    }
    params->emplace_back(std::move(name), std::move(def));
  }
  return expect_op(")");
}

Result<StmtPtr> Parser::parse_macro() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kMacro;
  next();  // macro
  if (cur().type != TokenType::kName) return fail("expected a macro name");
  s->name = cur().text;
  next();
  LS_RETURN_IF_ERROR(parse_signature(&s->params));
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  LS_RETURN_IF_ERROR(end_block_outside_loops("endmacro", &s->body));
  return s;
}

Result<StmtPtr> Parser::parse_call_block() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kCallBlock;
  next();  // call
  if (is_op("(")) LS_RETURN_IF_ERROR(parse_signature(&s->params));
  LS_ASSIGN_OR_RETURN(s->expr, parse_expression());
  if (s->expr->kind != ExprKind::kCall) return fail("expected call");
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  LS_RETURN_IF_ERROR(end_block_outside_loops("endcall", &s->body));
  return s;
}

Result<StmtPtr> Parser::parse_filter_block() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kFilterBlock;
  next();  // filter
  LS_ASSIGN_OR_RETURN(s->expr, parse_filter(nullptr, true));
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  LS_RETURN_IF_ERROR(end_block("endfilter", &s->body));
  return s;
}

Result<StmtPtr> Parser::parse_generation() {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::kScope;
  next();  // generation
  LS_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "'%}'"));
  LS_RETURN_IF_ERROR(end_block("endgeneration", &s->body));
  return s;
}

Result<std::shared_ptr<const Program>> parse_template(std::string_view source) {
  LS_ASSIGN_OR_RETURN(std::vector<Token> tokens, lex_template(source));
  Parser parser(std::move(tokens));
  LS_ASSIGN_OR_RETURN(Program program, parser.parse_program());
  return std::make_shared<const Program>(std::move(program));
}

}  // namespace ls::chat
