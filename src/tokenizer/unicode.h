// unicode.h: the UTF-8 and Unicode character helpers the tokenizer shares: decoding one code point,
// encoding, lossy repair of invalid UTF-8 (the same replacement policy as Rust's String::from_utf8_lossy,
// which Hugging Face `tokenizers` uses), and the character classes Rust's `char` methods define
// (is_whitespace, is_numeric, is_alphanumeric, is_punctuation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ls::unicode {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length in bytes of the valid UTF-8 sequence starting at text[pos], or 0 when it is not valid
// (truncated, overlong, surrogate, above U+10FFFF, or a stray continuation byte).
size_t valid_sequence_length(std::string_view text, size_t pos);

// Decodes the code point at text[pos]; the text must be valid UTF-8 there. Sets *len to its byte length.
char32_t decode(std::string_view text, size_t pos, size_t* len);

// Appends the UTF-8 encoding of cp.
void append_utf8(std::string& out, char32_t cp);

// Number of bytes of the UTF-8 character whose lead byte is b (1 for invalid lead bytes).
inline size_t lead_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

bool is_valid_utf8(std::string_view text);

// Returns text with each maximal invalid subsequence replaced by U+FFFD (Rust from_utf8_lossy).
std::string to_valid_utf8_lossy(std::string_view text);

// Number of code points of valid UTF-8 text.
size_t count_chars(std::string_view text);

// Rust char::is_whitespace: the Unicode White_Space property.
bool is_whitespace(char32_t c);
// Rust char::is_numeric: general categories Nd, Nl, No.
bool is_numeric(char32_t c);
// Rust char::is_alphanumeric approximated as letters, marks that combine (Mc) and numbers.
bool is_alphanumeric(char32_t c);
// Unicode general category P* (Rust char::is_punctuation), or ASCII punctuation.
bool is_punctuation(char32_t c);
// The \w of Rust's regex crate: Alphabetic, marks, decimal numbers, connector punctuation, joiners.
bool is_word_char(char32_t c);

}  // namespace ls::unicode
