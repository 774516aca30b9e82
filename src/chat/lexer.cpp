// lexer.cpp: the jinja2 lexer rules for the root state (data, tags, comments, raw) and for expressions.
#include "chat/lexer.h"

#include <cstring>

#include "chat/py_str.h"

namespace ls::chat {

namespace {

constexpr const char* kOperators2[] = {"//", "**", "==", "!=", ">=", "<="};
constexpr const char kOperators1[] = "+-/*%~[](){}><=.:|,;";

Status syntax_error(int line, const std::string& what) {
  return invalid_argument("template syntax error at line " + std::to_string(line) + ": " + what);
}

bool is_space_at(std::string_view s, size_t pos, size_t* len) {
  const auto c = static_cast<unsigned char>(s[pos]);
  if (c < 0x80) {
    *len = 1;
    return py_isspace(c);
  }
  size_t n = 1;
  while (pos + n < s.size() && (static_cast<unsigned char>(s[pos + n]) & 0xC0) == 0x80) ++n;
  *len = n;
  const std::u32string cp = utf8_to_u32(s.substr(pos, n));
  return cp.size() == 1 && py_isspace(cp[0]);
}

size_t skip_spaces(std::string_view s, size_t pos) {
  size_t len = 0;
  while (pos < s.size() && is_space_at(s, pos, &len)) pos += len;
  return pos;
}

// Python's str.rstrip() on UTF-8 text.
std::string_view rstrip_view(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!is_space_at(s, start, &len)) break;
    end = start;
  }
  return s.substr(0, end);
}

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)) {}
  Result<std::vector<Token>> run();

 private:
  Status lex_root();
  Status lex_expression(TokenType end_type);
  Status lex_comment(size_t after_begin);
  Status lex_raw(size_t body_start);
  Status lex_string(size_t* pos);
  Status lex_number(size_t* pos);
  Status decode_escapes(std::string_view raw, std::string* out);
  void emit(TokenType type, std::string text) { tokens_.push_back({type, std::move(text), line_}); }
  void emit_data(std::string_view text) {
    if (!text.empty()) emit(TokenType::kData, std::string(text));
  }
  void advance_to(size_t pos) {
    for (size_t i = pos_; i < pos && i < src_.size(); ++i) line_ += src_[i] == '\n';
    pos_ = pos;
  }
  // Where a block end tag (%} with its whitespace control) starts at pos, returns the position after it.
  size_t match_block_end(size_t pos) const;
  // Whether `{%(-|+|)\s*raw\s*(-%}\s*|%})` starts at pos; sets *end.
  bool match_raw_begin(size_t pos, size_t* end) const;
  // The data before a tag, as its sign trims it: '-' strips trailing whitespace; with no sign and `lstrip`
  // (block and comment tags: lstrip_blocks), spaces between the start of the line and the tag go.
  std::string_view trim_before_tag(std::string_view text, char sign, bool lstrip) const;

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

Result<std::vector<Token>> Lexer::run() {
  if (!is_valid_utf8(src_)) return invalid_argument("template is not valid UTF-8");
  // Normalise \r\n and \r to \n, then drop one trailing newline (keep_trailing_newline=False).
  std::string norm;
  norm.reserve(src_.size());
  for (size_t i = 0; i < src_.size(); ++i) {
    if (src_[i] == '\r') {
      norm.push_back('\n');
      if (i + 1 < src_.size() && src_[i + 1] == '\n') ++i;
    } else {
      norm.push_back(src_[i]);
    }
  }
  if (!norm.empty() && norm.back() == '\n') norm.pop_back();
  src_ = std::move(norm);
  LS_RETURN_IF_ERROR(lex_root());
  emit(TokenType::kEof, "");
  return std::move(tokens_);
}

size_t Lexer::match_block_end(size_t pos) const {
  std::string_view s(src_);
  if (s.substr(pos, 3) == "+%}") return pos + 3;
  if (s.substr(pos, 3) == "-%}") return skip_spaces(s, pos + 3);
  if (s.substr(pos, 2) == "%}") return pos + 2 + (pos + 2 < s.size() && s[pos + 2] == '\n');
  return std::string_view::npos;
}

bool Lexer::match_raw_begin(size_t pos, size_t* end) const {
  std::string_view s(src_);
  size_t p = pos + 2;
  if (p < s.size() && (s[p] == '-' || s[p] == '+')) ++p;
  p = skip_spaces(s, p);
  if (s.substr(p, 3) != "raw") return false;
  p = skip_spaces(s, p + 3);
  if (s.substr(p, 3) == "-%}") {
    *end = skip_spaces(s, p + 3);
    return true;
  }
  if (s.substr(p, 2) == "%}") {
    *end = p + 2;
    return true;
  }
  return false;
}

Status Lexer::lex_root() {
  std::string_view s(src_);
  while (pos_ < s.size()) {
    size_t tag = s.find('{', pos_);
    while (tag != std::string_view::npos &&
           (tag + 1 >= s.size() || (s[tag + 1] != '{' && s[tag + 1] != '%' && s[tag + 1] != '#')))
      tag = s.find('{', tag + 1);
    if (tag == std::string_view::npos) {
      emit_data(s.substr(pos_));
      advance_to(s.size());
      return Status::ok();
    }
    const char kind = s[tag + 1];
    size_t raw_end = 0;
    const bool is_raw = kind == '%' && match_raw_begin(tag, &raw_end);
    const char sign = tag + 2 < s.size() && (s[tag + 2] == '-' || s[tag + 2] == '+') ? s[tag + 2] : 0;
    emit_data(trim_before_tag(s.substr(pos_, tag - pos_), sign, kind != '{'));
    advance_to(tag);
    line_starting_ = false;
    if (is_raw) {
      advance_to(raw_end);
      line_starting_ = s[raw_end - 1] == '\n';
      LS_RETURN_IF_ERROR(lex_raw(raw_end));
      continue;
    }
    const size_t body = tag + 2 + (sign != 0);
    if (kind == '#') {
      LS_RETURN_IF_ERROR(lex_comment(body));
      continue;
    }
    emit(kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, "");
    advance_to(body);
    LS_RETURN_IF_ERROR(lex_expression(kind == '{' ? TokenType::kVarEnd : TokenType::kBlockEnd));
  }
  return Status::ok();
}

std::string_view Lexer::trim_before_tag(std::string_view text, char sign, bool lstrip) const {
  if (sign == '-') return rstrip_view(text);
  if (sign == '+' || !lstrip) return text;
  const size_t nl = text.rfind('\n');
  const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
  if ((l_pos > 0 || line_starting_) && l_pos < text.size()) {
    bool all_space = true;
    for (size_t i = l_pos, len = 0; i < text.size(); i += len)
      if (!is_space_at(text, i, &len)) all_space = false;
    if (all_space) return text.substr(0, l_pos);
  }
  return text;
}

Status Lexer::lex_comment(size_t body) {
  std::string_view s(src_);
  const size_t close = s.find("#}", body);
  if (close == std::string_view::npos) return syntax_error(line_, "missing end of comment tag");
  size_t end = close + 2;
  if (close > body && s[close - 1] == '-') {
    end = skip_spaces(s, end);
  } else if (!(close > body && s[close - 1] == '+')) {
    end += end < s.size() && s[end] == '\n';
  }
  advance_to(end);
  line_starting_ = end > 0 && s[end - 1] == '\n';
  return Status::ok();
}

Status Lexer::lex_raw(size_t body_start) {
  std::string_view s(src_);
  // Find `{%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)`.
  for (size_t at = s.find("{%", body_start); at != std::string_view::npos; at = s.find("{%", at + 1)) {
    size_t p = at + 2;
    const char sign = p < s.size() && (s[p] == '-' || s[p] == '+') ? s[p] : 0;
    if (sign) ++p;
    p = skip_spaces(s, p);
    if (s.substr(p, 6) != "endraw") continue;
    p = skip_spaces(s, p + 6);
    const size_t end = match_block_end(p);
    if (end == std::string_view::npos) continue;
    emit_data(trim_before_tag(s.substr(body_start, at - body_start), sign, true));
    advance_to(end);
    line_starting_ = end > 0 && s[end - 1] == '\n';
    return Status::ok();
  }
  return syntax_error(line_, "missing end of raw directive");
}

Status Lexer::lex_expression(TokenType end_type) {
  std::string_view s(src_);
  std::string balance;
  while (true) {
    if (pos_ >= s.size()) return syntax_error(line_, "unexpected end of template inside a tag");
    if (balance.empty()) {
      size_t end = std::string_view::npos;
      if (end_type == TokenType::kBlockEnd) {
        end = match_block_end(pos_);
      } else if (s.substr(pos_, 3) == "-}}") {
        end = skip_spaces(s, pos_ + 3);
      } else if (s.substr(pos_, 2) == "}}") {
        end = pos_ + 2;
      }
      if (end != std::string_view::npos) {
        emit(end_type, "");
        advance_to(end);
        line_starting_ = s[end - 1] == '\n';
        return Status::ok();
      }
    }
    size_t len = 0;
    const char c = s[pos_];
    if (is_space_at(s, pos_, &len)) {
      advance_to(pos_ + len);
    } else if (is_digit(c)) {
      size_t p = pos_;
      LS_RETURN_IF_ERROR(lex_number(&p));
      advance_to(p);
    } else if (is_name_start(c)) {
      size_t p = pos_;
      while (p < s.size() && is_name_char(s[p])) ++p;
      emit(TokenType::kName, std::string(s.substr(pos_, p - pos_)));
      advance_to(p);
    } else if (c == '\'' || c == '"') {
      size_t p = pos_;
      LS_RETURN_IF_ERROR(lex_string(&p));
      advance_to(p);
    } else {
      std::string op;
      for (const char* two : kOperators2)
        if (s.substr(pos_, 2) == two) op = two;
      if (op.empty() && std::strchr(kOperators1, c) && c != '\0') op = std::string(1, c);
      if (op.empty()) return syntax_error(line_, std::string("unexpected char '") + c + "'");
      if (op == "{" || op == "(" || op == "[") {
        if (balance.size() > 1000) return syntax_error(line_, "brackets nested too deeply");
        balance.push_back(op == "{" ? '}' : op == "(" ? ')' : ']');
      } else if (op == "}" || op == ")" || op == "]") {
        if (balance.empty()) return syntax_error(line_, "unexpected '" + op + "'");
        if (balance.back() != op[0])
          return syntax_error(line_, "unexpected '" + op + "', expected '" + balance.back() + "'");
        balance.pop_back();
      }
      emit(TokenType::kOperator, op);
      advance_to(pos_ + op.size());
    }
  }
}

Status Lexer::lex_number(size_t* pos) {
  std::string_view s(src_);
  size_t p = *pos;
  auto digits = [&](size_t q, auto valid) {
    // (\d+_)*\d+ : digits with single underscores between them.
    size_t start = q;
    while (q < s.size() && (valid(s[q]) || (s[q] == '_' && q > start && q + 1 < s.size() && valid(s[q + 1])))) ++q;
    return q;
  };
  auto dec = [](char c) { return is_digit(c); };
  // Base-prefixed integers.
  if (s[p] == '0' && p + 1 < s.size() && std::strchr("bBoOxX", s[p + 1]) && s[p + 1] != '\0') {
    const char b = static_cast<char>(s[p + 1] | 0x20);
    auto valid = [b](char c) {
      return b == 'b' ? (c == '0' || c == '1') : b == 'o' ? (c >= '0' && c <= '7') : hex_value(c) >= 0;
    };
    size_t q = p + 2;
    if (q < s.size() && s[q] == '_') ++q;
    const size_t end = digits(q, valid);
    if (end > q) {
      std::string text(s.substr(p, end - p));
      std::erase(text, '_');
      emit(TokenType::kInteger, text);
      *pos = end;
      return Status::ok();
    }
  }
  size_t end = digits(p, dec);
  bool is_float = false;
  if (end + 1 < s.size() && s[end] == '.' && is_digit(s[end + 1])) {
    end = digits(end + 1, dec);
    is_float = true;
  }
  if (end < s.size() && (s[end] == 'e' || s[end] == 'E')) {
    size_t q = end + 1;
    if (q < s.size() && (s[q] == '+' || s[q] == '-')) ++q;
    if (q < s.size() && is_digit(s[q])) {
      end = digits(q, dec);
      is_float = true;
    }
  }
  std::string text(s.substr(p, end - p));
  std::erase(text, '_');
  if (!is_float && text.size() > 1 && text[0] == '0' && text.find_first_not_of('0') != std::string::npos) {
    // jinja2 lexes "01" as "0" then "1", which never parses.
    return syntax_error(line_, "invalid integer literal '" + text + "'");
  }
  emit(is_float ? TokenType::kFloat : TokenType::kInteger, text);
  *pos = end;
  return Status::ok();
}

Status Lexer::lex_string(size_t* pos) {
  std::string_view s(src_);
  const char quote = s[*pos];
  size_t p = *pos + 1;
  while (p < s.size() && s[p] != quote) p += s[p] == '\\' ? 2 : 1;
  if (p >= s.size()) return syntax_error(line_, "unterminated string literal");
  std::string value;
  LS_RETURN_IF_ERROR(decode_escapes(s.substr(*pos + 1, p - *pos - 1), &value));
  emit(TokenType::kString, std::move(value));
  *pos = p + 1;
  return Status::ok();
}

// Python's "unicode-escape" decoding, which jinja2 applies to string literals.
Status Lexer::decode_escapes(std::string_view raw, std::string* out) {
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out->push_back(raw[i]);
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case '\n': break;
      case '\\': out->push_back('\\'); break;
      case '\'': out->push_back('\''); break;
      case '"': out->push_back('"'); break;
      case 'a': out->push_back('\a'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'n': out->push_back('\n'); break;
      case 'r': out->push_back('\r'); break;
      case 't': out->push_back('\t'); break;
      case 'v': out->push_back('\v'); break;
      case 'x': case 'u': case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        char32_t cp = 0;
        for (size_t k = 1; k <= n; ++k) {
          const int h = i + k < raw.size() ? hex_value(raw[i + k]) : -1;
          if (h < 0) return syntax_error(line_, std::string("truncated \\") + e + " escape in string literal");
          cp = cp * 16 + static_cast<char32_t>(h);
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
          return syntax_error(line_, "string literal escape is not a valid code point");
        append_utf8(*out, cp);
        i += n;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          char32_t cp = 0;
          size_t k = 0;
          while (k < 3 && i + k < raw.size() && raw[i + k] >= '0' && raw[i + k] <= '7') cp = cp * 8 + (raw[i + k++] - '0');
          append_utf8(*out, cp);
          i += k - 1;
        } else if (e == 'N') {
          return unsupported("\\N{...} escapes in template string literals are not supported");
        } else {
          out->push_back('\\');
          out->push_back(e);
        }
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<Token>> lex_template(std::string_view source) { return Lexer(std::string(source)).run(); }

}  // namespace ls::chat
