// py_str.h: Python str semantics for the template interpreter, over UTF-8 (decoding from core/utf8.h): length,
// indexing and slicing count code points; strip/split use Python's notion of whitespace; case mapping as str does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/utf8.h"

namespace ls::chat {

// UTF-8 validation, encoding and code point counts are core's (core/utf8.h).
using unicode::append_utf8;
using unicode::is_valid_utf8;

// Decodes valid UTF-8 into code points (invalid bytes decode as U+FFFD; callers validate first).
std::u32string utf8_to_u32(std::string_view s);

std::string u32_to_utf8(std::u32string_view s);

// Python's str.isspace() for one code point.
bool py_isspace(char32_t cp);

// Python's str.strip/lstrip/rstrip. With chars == nullptr strips whitespace, else any code point in *chars.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

// Python's str.split(): sep == nullptr splits on runs of whitespace; maxsplit < 0 means no limit.
std::vector<std::string> py_split(std::string_view s, const std::string* sep, long long maxsplit);
// Python's str.rsplit().
std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, long long maxsplit);

// Python's str.splitlines() (keepends = false).
std::vector<std::string> py_splitlines(std::string_view s);

// Python's str.upper()/lower(): Unicode case mapping (utf8proc's simple mappings plus the expanding special
// cases ß, ligatures, İ and the final sigma).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
// Whether a code point is cased (Lu, Ll or Lt).
bool py_is_cased(char32_t c);
std::string py_capitalize(std::string_view s);
// Python's str.title(): a letter following a cased letter is lowered, any other letter is title-cased.
std::string py_title(std::string_view s);

// Python's str.replace (count < 0: all).
std::string py_replace(std::string_view s, std::string_view old_sub, std::string_view new_sub, long long count);

}  // namespace ls::chat
