// lexer.h: turns template source into tokens the way jinja2's lexer does with transformers' settings
// (trim_blocks and lstrip_blocks on, `-`/`+` whitespace control, raw blocks, comments dropped, line endings
// normalised to \n and one trailing newline removed). Expression tokens inside {{ }} and {% %} come out as names,
// literals and operators.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ls::chat {

enum class TokenType : uint8_t {
  kData,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text holds the decoded value
  kInteger,     // text holds the digits (underscores removed, base prefix kept)
  kFloat,
  kOperator,
  kEof,
};

struct Token {
  TokenType type;
  std::string text;
  int line = 1;
};

// Lexes a whole template. Errors (unterminated tags, comments or strings, bad escapes, unbalanced brackets,
// invalid UTF-8) are kInvalidArgument with the line number.
Result<std::vector<Token>> lex_template(std::string_view source);

}  // namespace ls::chat
