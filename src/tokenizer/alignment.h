// alignment.h: offsets through the pipeline, as Hugging Face's NormalizedString keeps them: for every byte of a
// piece's current text, the byte range [start, end) of the original input it comes from. Text rewrites are
// expressed as HF's transform (each new character with a change: 0 replaces the next old character, +1 is
// inserted, -n replaces and removes n more) so that inserted, merged and removed characters align exactly as
// `tokenizers` aligns them. Used only by Tokenizer::encode_with_offsets; encode() never pays for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ls {

using Offsets = std::pair<uint32_t, uint32_t>;

struct Alignment {
  std::vector<Offsets> bytes;  // one per byte of the text
  uint32_t origin = 0;         // the original offset where this piece starts (insertions at its start align
                               // to (origin, origin))
};

struct CharChange {
  char32_t c;
  int32_t change;  // 0: replaces the next old character; +1: inserted; -n: replaces it and removes n more
};

// Each byte of `text` (valid UTF-8, starting at original offset `start`) aligned to its whole character.
Alignment identity_alignment(std::string_view text, uint32_t start);

// The sub-alignment of bytes [begin, end): what a split's piece keeps (HF NormalizedString::slice).
Alignment slice_alignment(const Alignment& a, size_t begin, size_t end);

// The original range bytes [begin, end) of the text cover: (start of the first, end of the last).
Offsets expand_alignment(const Alignment& a, size_t begin, size_t end);

// HF transform_range: replaces bytes [begin, end) of text, whose characters are consumed in order by
// `changes` after skipping `initial_offset` removed characters, and updates the alignment.
void transform_range(std::string& text, Alignment& a, size_t begin, size_t end,
                     const std::vector<CharChange>& changes, size_t initial_offset);
inline void transform(std::string& text, Alignment& a, const std::vector<CharChange>& changes,
                      size_t initial_offset) {
  transform_range(text, a, 0, text.size(), changes, initial_offset);
}

// Rewrites every character through map (to zero or more characters): a character's first replacement
// replaces it, the rest are inserted after it, and a character mapped to nothing is removed (HF filter
// semantics: the kept character before a removed run absorbs it; a removed run at the start is skipped).
void map_chars_aligned(std::string& text, Alignment& a, const std::function<std::u32string(char32_t)>& map);

// HF NormalizedString::prepend: prefix before the first character (aligned to that character).
void prepend_aligned(std::string& text, Alignment& a, std::string_view prefix);

}  // namespace ls
