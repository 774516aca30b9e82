// parser_impl.h: the recursive-descent parser shared by parser_stmt.cpp (statements) and parser_expr.cpp
// (expressions). Private to the chat library.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace ls::chat {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}
  Result<Program> parse_program();

 private:
  // Token stream.
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::kOperator && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(std::string_view op);
  bool skip_name(std::string_view name);
  Status expect_op(std::string_view op);
  Status expect_name(std::string_view name);
  Status expect_type(TokenType type, const char* what);
  Status fail(const std::string& message) const;
  Status enter();  // bounds the nesting depth
  void leave() { --depth_; }

  // Statements (parser_stmt.cpp).
  Status parse_body(Body* out, std::initializer_list<std::string_view> end_names, std::string* found);
  Status parse_statement(Body* out);
  Result<StmtPtr> parse_if();
  Result<StmtPtr> parse_for();
  Result<StmtPtr> parse_set();
  Result<StmtPtr> parse_macro();
  Result<StmtPtr> parse_call_block();
  Result<StmtPtr> parse_filter_block();
  Result<StmtPtr> parse_generation();
  Status parse_signature(std::vector<std::pair<std::string, ExprPtr>>* params);
  Status parse_target(Target* target, bool with_namespace);
  Status end_block(std::string_view end_name, Body* body);
  // end_block for a body that runs on its own (macro, call block): loop control there has no loop to act on.
  Status end_block_outside_loops(std::string_view end_name, Body* body);

  // Expressions (parser_expr.cpp).
 public:
  Result<ExprPtr> parse_tuple(bool with_condexpr, std::string_view extra_end = {}, bool explicit_parens = false);
  Result<ExprPtr> parse_expression(bool with_condexpr = true);

 private:
  Result<ExprPtr> parse_condexpr();
  Result<ExprPtr> parse_or();
  Result<ExprPtr> parse_and();
  Result<ExprPtr> parse_not();
  Result<ExprPtr> parse_compare();
  Result<ExprPtr> parse_math1();
  Result<ExprPtr> parse_concat();
  Result<ExprPtr> parse_math2();
  Result<ExprPtr> parse_pow();
  // A left-associative level: `operand (op operand)*`, one `kind` node per operator; `op` consumes the next
  // operator and gives the node's name, or gives nullopt when none follows. Each link counts toward the depth bound.
  template <typename Operand, typename Op>
  Result<ExprPtr> parse_left_chain(ExprKind kind, Operand operand, Op op);
  // The current operator token's text when it is one of `ops` (consumed), else nullopt.
  std::optional<std::string> take_op(std::initializer_list<std::string_view> ops);
  Result<ExprPtr> parse_unary(bool with_filter);
  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_list();
  Result<ExprPtr> parse_dict();
  Result<ExprPtr> parse_postfix(ExprPtr node);
  Result<ExprPtr> parse_filter_expr(ExprPtr node);
  Result<ExprPtr> parse_subscript(ExprPtr node);
  Result<ExprPtr> parse_subscribed();
  Status parse_call_args(Expr* call);
  Result<ExprPtr> parse_filter(ExprPtr node, bool start_inline);
  Result<ExprPtr> parse_test(ExprPtr node);
  Result<std::string> parse_dotted_name();
  ExprPtr make(ExprKind kind) const;

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace ls::chat
