// byte_level.cpp: builds the byte <-> character tables once.
#include "tokenizer/byte_level.h"

#include "tokenizer/unicode.h"

namespace ls::byte_level {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 512> from_char{};  // every alphabet character is below U+0200

  Tables() {
    from_char.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? char32_t(b) : char32_t(256 + n++);
    }
    for (int b = 0; b < 256; ++b) {
      unicode::append_utf8(to_utf8[b], to_char[b]);
      from_char[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables kTables;
  return kTables;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

const std::string& byte_to_utf8(uint8_t b) { return tables().to_utf8[b]; }

int char_to_byte(char32_t c) { return c < 512 ? tables().from_char[c] : -1; }

void append_encoded(std::string& out, std::string_view text) {
  const Tables& t = tables();
  for (char c : text) out.append(t.to_utf8[static_cast<uint8_t>(c)]);
}

bool decode_to_bytes(std::string_view text, std::string& out) {
  size_t i = 0;
  while (i < text.size()) {
    size_t len = unicode::valid_sequence_length(text, i);
    if (len == 0) return false;
    const int b = char_to_byte(unicode::decode(text, i, &len));
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += len;
  }
  return true;
}

std::u32string encoded_chars(char32_t c) {
  std::string utf8;
  unicode::append_utf8(utf8, c);
  std::u32string out;
  for (unsigned char b : utf8) out.push_back(byte_to_char(b));
  return out;
}

}  // namespace ls::byte_level
