// utf8.cpp: UTF-8 validation, decoding, encoding and lossy repair.
#include "core/utf8.h"

namespace ls::unicode {
namespace {

// For a multi-byte lead byte: the sequence length and the allowed range of the second byte (which excludes
// overlongs, surrogates and code points above U+10FFFF). False for ASCII, continuation and invalid bytes.
bool lead_byte_rule(unsigned char b0, size_t* len, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    *len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    *len = 3;
    if (b0 == 0xE0) *lo = 0xA0;
    if (b0 == 0xED) *hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    *len = 4;
    if (b0 == 0xF0) *lo = 0x90;
    if (b0 == 0xF4) *hi = 0x8F;
  } else {
    return false;
  }
  return true;
}

}  // namespace

size_t valid_sequence_length(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const unsigned char b0 = s[pos];
  if (b0 < 0x80) return 1;
  size_t len;
  unsigned char lo, hi;
  if (!lead_byte_rule(b0, &len, &lo, &hi)) return 0;
  if (pos + 1 >= n || s[pos + 1] < lo || s[pos + 1] > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (pos + i >= n || (s[pos + i] & 0xC0) != 0x80) return 0;
  }
  return len;
}

// Length of the maximal prefix of an ill-formed sequence at pos that a valid sequence could start with
// (Unicode "maximal subpart"); at least 1. Each such subpart becomes one U+FFFD.
static size_t invalid_subpart_length(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const unsigned char b0 = s[pos];
  size_t len;
  unsigned char lo, hi;
  if (!lead_byte_rule(b0, &len, &lo, &hi)) return 1;
  size_t i = 1;
  if (pos + i < n && s[pos + i] >= lo && s[pos + i] <= hi) {
    ++i;
    while (i < len && pos + i < n && (s[pos + i] & 0xC0) == 0x80) ++i;
  }
  return i;
}

char32_t decode(std::string_view text, size_t pos, size_t* len) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const unsigned char b0 = s[0];
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *len = 2;
    return (char32_t(b0 & 0x1F) << 6) | (s[1] & 0x3F);
  }
  if (b0 < 0xF0) {
    *len = 3;
    return (char32_t(b0 & 0x0F) << 12) | (char32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
  }
  *len = 4;
  return (char32_t(b0 & 0x07) << 18) | (char32_t(s[1] & 0x3F) << 12) | (char32_t(s[2] & 0x3F) << 6) |
         (s[3] & 0x3F);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = valid_sequence_length(text, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string to_valid_utf8_lossy(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const size_t len = valid_sequence_length(text, i);
    if (len > 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      append_utf8(out, kReplacementChar);
      i += invalid_subpart_length(text, i);
    }
  }
  return out;
}

size_t count_chars(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace ls::unicode
