// utf8.h: UTF-8 for every text parser (tokenizer, chat templates, request bodies): validation, decoding one
// code point, encoding, and lossy repair of invalid input with the replacement policy of Rust's
// String::from_utf8_lossy (which Hugging Face `tokenizers` uses): each maximal invalid subpart becomes U+FFFD.
#pragma once

#include <cstddef>
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

}  // namespace ls::unicode
