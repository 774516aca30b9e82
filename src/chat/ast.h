// ast.h: the syntax tree the parser builds and the interpreter walks. One Expr struct and one Stmt struct with a
// kind tag keep the tree simple to build and to walk; each kind documents which fields it uses.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace ls::chat {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
  kLiteral,   // literal
  kName,      // name
  kList,      // args
  kTuple,     // args
  kDict,      // pairs (key, value) in args: even indices keys, odd values
  kGetAttr,   // a.name
  kGetItem,   // a[b]
  kSlice,     // args[0..2] = start, stop, step (each may be null); only as b of kGetItem
  kCall,      // a(args, kwargs)
  kFilter,    // a | name(args, kwargs); a is null inside {% filter %} blocks
  kTest,      // a is name(args, kwargs)
  kNeg,       // -a
  kPos,       // +a
  kNot,       // not a
  kBinary,    // a op b with op in + - * / // % ** (name holds op)
  kConcat,    // args joined with ~
  kCompare,   // a (ops[i] args[i])...
  kAnd,       // a and b
  kOr,        // a or b
  kCondExpr,  // a if b else c (c may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value literal;
  std::string name;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

// Assignment target of for/set: one name, a flat tuple of names, or a namespace attribute (ns.attr).
struct Target {
  std::vector<std::string> names;
  bool is_tuple = false;
  std::string attr;  // set when the target is names[0].attr
};

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches: (condition, body); a null condition is the else branch
  kFor,          // target in expr [if cond] body [else else_body]
  kSet,          // target = expr
  kSetBlock,     // {% set target [| filter] %}body{% endset %}; filter in expr (kFilter chain with null input)
  kMacro,        // name(params) body
  kCallBlock,    // {% call(params) expr %}body{% endcall %}: expr is the call, body becomes caller()
  kFilterBlock,  // {% filter expr %}body{% endfilter %}
  kBreak,
  kContinue,
  kScope,        // body rendered in place ({% generation %} blocks of transformers' AssistantTracker)
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters; null default = required
};

// A parsed template: its top-level statements. The tree is immutable after parsing.
struct Program {
  Body body;
};

}  // namespace ls::chat
