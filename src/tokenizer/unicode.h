// unicode.h: the Unicode character classes the tokenizer shares, as Rust's `char` methods define them
// (is_whitespace, is_numeric, is_alphanumeric, is_punctuation); UTF-8 decoding, encoding and repair come from
// core/utf8.h in the same namespace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace ls::unicode {

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
