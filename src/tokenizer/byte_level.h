// byte_level.h: the GPT-2 byte <-> character table (Hugging Face `bytes_char`). Byte-level BPE vocabularies
// are written in this alphabet: printable bytes map to themselves, the others to U+0100 + n.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ls::byte_level {

// The character that stands for byte b.
char32_t byte_to_char(uint8_t b);

// The UTF-8 encoding of byte_to_char(b) (one or two bytes).
const std::string& byte_to_utf8(uint8_t b);

// The byte that character c stands for, or -1 when c is not in the alphabet.
int char_to_byte(char32_t c);

// Maps every byte of text to its character (the ByteLevel pre-tokenizer's transform).
void append_encoded(std::string& out, std::string_view text);

// The alphabet characters of c's UTF-8 bytes (one per byte), for offset-tracking rewrites.
std::u32string encoded_chars(char32_t c);

// Maps text written in the alphabet back to bytes; false when some character is not in the alphabet.
bool decode_to_bytes(std::string_view text, std::string& out);

}  // namespace ls::byte_level
