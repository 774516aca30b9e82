// parser.h: builds the syntax tree of a template from its tokens, following jinja2's grammar (operator
// precedence, tests without parentheses, slices, tuples, keyword arguments). Nesting is bounded so a hostile
// template cannot exhaust the stack.
#pragma once

#include <memory>
#include <string_view>

#include "chat/ast.h"
#include "core/status.h"

namespace ls::chat {

// Lexes and parses a template. Syntax errors and unsupported statements (extends, include, import, ...) are
// kInvalidArgument / kUnsupported with the line number.
Result<std::shared_ptr<const Program>> parse_template(std::string_view source);

}  // namespace ls::chat
