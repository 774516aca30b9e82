// alignment.cpp: NormalizedString-style alignment bookkeeping.
#include "tokenizer/alignment.h"

#include "core/check.h"
#include "tokenizer/unicode.h"

namespace ls {

Alignment identity_alignment(std::string_view text, uint32_t start) {
  Alignment a;
  a.origin = start;
  a.bytes.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = unicode::lead_length(static_cast<unsigned char>(text[i]));
    if (i + len > text.size()) len = text.size() - i;
    const Offsets range{static_cast<uint32_t>(start + i), static_cast<uint32_t>(start + i + len)};
    for (size_t k = 0; k < len; ++k) a.bytes.push_back(range);
    i += len;
  }
  return a;
}

Alignment slice_alignment(const Alignment& a, size_t begin, size_t end) {
  Alignment s;
  s.bytes.assign(a.bytes.begin() + static_cast<std::ptrdiff_t>(begin), a.bytes.begin() + static_cast<std::ptrdiff_t>(end));
  s.origin = s.bytes.empty() ? a.origin : s.bytes.front().first;
  return s;
}

Offsets expand_alignment(const Alignment& a, size_t begin, size_t end) {
  if (end <= begin || end > a.bytes.size()) return {a.origin, a.origin};
  return {a.bytes[begin].first, a.bytes[end - 1].second};
}

void transform_range(std::string& text, Alignment& a, size_t begin, size_t end,
                     const std::vector<CharChange>& changes, size_t initial_offset) {
  LS_CHECK(a.bytes.size() == text.size()) << "alignment out of step with its text";
  // Byte lengths of the old characters in [begin, end), consumed in order.
  std::vector<size_t> old_lengths;
  for (size_t i = begin; i < end;) {
    size_t len = unicode::lead_length(static_cast<unsigned char>(text[i]));
    if (i + len > end) len = end - i;
    old_lengths.push_back(len);
    i += len;
  }
  size_t next_old = 0;
  size_t offset = begin;
  for (; next_old < initial_offset && next_old < old_lengths.size(); ++next_old) offset += old_lengths[next_old];
  std::string new_text;
  std::vector<Offsets> new_align;
  for (const CharChange& ch : changes) {
    Offsets align;
    if (ch.change > 0) {
      align = offset < 1 ? Offsets{a.origin, a.origin} : a.bytes[offset - 1];
    } else {
      align = offset < a.bytes.size() ? a.bytes[offset] : (offset > 0 ? a.bytes[offset - 1] : Offsets{a.origin, a.origin});
      if (next_old < old_lengths.size()) offset += old_lengths[next_old++];
      for (int32_t k = 0; k < -ch.change && next_old < old_lengths.size(); ++k) offset += old_lengths[next_old++];
    }
    const size_t before = new_text.size();
    unicode::append_utf8(new_text, ch.c);
    new_align.insert(new_align.end(), new_text.size() - before, align);
  }
  text.replace(begin, end - begin, new_text);
  a.bytes.erase(a.bytes.begin() + static_cast<std::ptrdiff_t>(begin), a.bytes.begin() + static_cast<std::ptrdiff_t>(end));
  a.bytes.insert(a.bytes.begin() + static_cast<std::ptrdiff_t>(begin), new_align.begin(), new_align.end());
}

void map_chars_aligned(std::string& text, Alignment& a, const std::function<std::u32string(char32_t)>& map) {
  std::vector<CharChange> changes;
  size_t leading_removed = 0;
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const char32_t c = unicode::decode(text, i, &len);
    i += len;
    const std::u32string out = map(c);
    if (out.empty()) {
      // The character that replaced the previous kept one absorbs the removal (none yet: skipped at the start).
      size_t k = changes.size();
      while (k > 0 && changes[k - 1].change > 0) --k;
      if (k == 0) {
        ++leading_removed;
      } else {
        --changes[k - 1].change;
      }
      continue;
    }
    for (size_t k = 0; k < out.size(); ++k) changes.push_back({out[k], k == 0 ? 0 : 1});
  }
  transform(text, a, changes, leading_removed);
}

void prepend_aligned(std::string& text, Alignment& a, std::string_view prefix) {
  if (text.empty() || prefix.empty()) return;
  size_t first_len;
  const char32_t first = unicode::decode(text, 0, &first_len);
  std::vector<CharChange> changes;
  for (size_t i = 0; i < prefix.size();) {
    size_t len;
    const char32_t c = unicode::decode(prefix, i, &len);
    changes.push_back({c, changes.empty() ? 0 : 1});
    i += len;
  }
  changes.push_back({first, 1});
  transform_range(text, a, 0, first_len, changes, 0);
}

}  // namespace ls
