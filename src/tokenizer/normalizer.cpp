// normalizer.cpp: the normalizers, each as Hugging Face `tokenizers` defines it, and their factory.
#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <span>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

#include "tokenizer/normalization_delta.inc"

enum class Form { kNfc, kNfd, kNfkc, kNfkd };

// Characters `tokenizers` leaves unchanged under a form (its Unicode tables are older than utf8proc's).
std::span<const char32_t> unchanged_chars(Form form) {
  switch (form) {
    case Form::kNfc: return kNfcUnchanged;
    case Form::kNfd: return kNfdUnchanged;
    case Form::kNfkc: return kNfkcUnchanged;
    case Form::kNfkd: return kNfkdUnchanged;
  }
  return {};
}

bool contains(std::span<const char32_t> sorted, char32_t c) {
  return std::binary_search(sorted.begin(), sorted.end(), c);
}

// A mark by `tokenizers`' table (utf8proc's Mn/Mc/Me, corrected where the two Unicode versions differ).
bool is_combining_mark(char32_t c) {
  if (c < 0x300) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  const bool mark = cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME;
  return mark ? !contains(kStripAccentsKeep, c) : contains(kStripAccentsDrop, c);
}

char32_t to_lowercase(char32_t c) {
  const auto* end = std::end(kLowercaseExtra);
  const auto* it = std::lower_bound(std::begin(kLowercaseExtra), end, c,
                                    [](const char32_t (&pair)[2], char32_t v) { return pair[0] < v; });
  if (it != end && (*it)[0] == c) return (*it)[1];
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

// Largest code point of text, to skip the work when normalization cannot change anything.
char32_t max_code_point(std::string_view text) {
  char32_t max = 0;
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const char32_t c = unicode::decode(text, i, &len);
    if (c > max) max = c;
    i += len;
  }
  return max;
}

// The changes pairing a normalized segment with the n_in characters it came from: each output character
// replaces the next input character; surplus input characters are removed by the first output character,
// surplus output characters are insertions.
void append_segment_changes(std::string_view out, size_t n_in, std::vector<CharChange>& changes) {
  std::vector<char32_t> chars;
  for (size_t i = 0; i < out.size();) {
    size_t len;
    chars.push_back(unicode::decode(out, i, &len));
    i += len;
  }
  for (size_t k = 0; k < chars.size(); ++k) {
    int32_t change = k < n_in ? 0 : 1;
    if (k == 0 && chars.size() < n_in) change = -static_cast<int32_t>(n_in - chars.size());
    changes.push_back({chars[k], change});
  }
}

bool nmt_drops(char32_t c) {
  return (c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || c == 0x8F || c == 0x9F;
}

bool nmt_to_space(char32_t c) {
  return c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
         c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD;
}


class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(Form form) : form_(form) {}

  // Pairs output characters with input characters as unicode-normalization-alignments does for `tokenizers`:
  // each input character decomposes (its first character replaces it, the rest are inserted), marks are put
  // in canonical order carrying their pairing, and a character composed into its starter is removed by it.
  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    std::string whole = text;
    LS_RETURN_IF_ERROR(normalize(whole, at_origin));
    if (whole == text) return Status::ok();
    std::vector<Mark> seq;
    LS_RETURN_IF_ERROR(decompose(text, seq));
    if (form_ == Form::kNfc || form_ == Form::kNfkc) compose(seq);
    std::vector<CharChange> changes;
    std::string rebuilt;
    for (const Mark& m : seq) {
      changes.push_back({m.c, m.change});
      unicode::append_utf8(rebuilt, m.c);
    }
    if (rebuilt != whole) {
      // Our reconstruction disagrees with the normalizer (should not happen): keep the text right and pair
      // characters by position.
      changes.clear();
      append_segment_changes(whole, unicode::count_chars(text), changes);
    }
    transform(text, align, changes, 0);
    return Status::ok();
  }

  Status normalize(std::string& text, bool&) const override {
    // ASCII is invariant under every form; below U+0300 nothing composes, so NFC keeps it as it is.
    const char32_t max = max_code_point(text);
    if (max < 0x80 || (form_ == Form::kNfc && max < 0x300)) return Status::ok();
    // Characters `tokenizers` does not know stay as they are and split the text into separate runs.
    const std::span<const char32_t> unchanged = unchanged_chars(form_);
    std::string out;
    size_t run_start = 0;
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      if (c >= 0x300 && contains(unchanged, c)) {
        LS_RETURN_IF_ERROR(append_normalized(std::string_view(text).substr(run_start, i - run_start), out));
        out.append(text, i, len);
        run_start = i + len;
      }
      i += len;
    }
    if (run_start == 0) {
      out.clear();
      LS_RETURN_IF_ERROR(append_normalized(text, out));
    } else {
      LS_RETURN_IF_ERROR(append_normalized(std::string_view(text).substr(run_start), out));
    }
    text = std::move(out);
    return Status::ok();
  }

 private:
  struct Mark {
    char32_t c;
    int32_t change;
    int ccc;
    bool frozen;  // a character `tokenizers` leaves as it is: no decomposition, no composition across it
  };

  static int combining_class(char32_t c) {
    return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
  }

  Status decompose(std::string_view text, std::vector<Mark>& seq) const {
    const std::span<const char32_t> unchanged = unchanged_chars(form_);
    int options = UTF8PROC_DECOMPOSE | UTF8PROC_STABLE;
    if (form_ == Form::kNfkc || form_ == Form::kNfkd) options |= UTF8PROC_COMPAT;
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      i += len;
      if (c >= 0x300 && contains(unchanged, c)) {
        seq.push_back({c, 0, 0, true});
        continue;
      }
      utf8proc_int32_t buf[32];
      int boundclass = 0;
      const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32,
                                                         static_cast<utf8proc_option_t>(options), &boundclass);
      if (n < 0 || n > 32) return invalid_argument(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
      for (utf8proc_ssize_t k = 0; k < n; ++k) {
        const char32_t d = static_cast<char32_t>(buf[k]);
        seq.push_back({d, k == 0 ? 0 : 1, combining_class(d), false});
      }
    }
    // Canonical order: runs of marks stable-sorted by combining class.
    for (size_t i = 0; i < seq.size();) {
      if (seq[i].ccc == 0 || seq[i].frozen) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < seq.size() && seq[j].ccc != 0 && !seq[j].frozen) ++j;
      std::stable_sort(seq.begin() + static_cast<std::ptrdiff_t>(i), seq.begin() + static_cast<std::ptrdiff_t>(j),
                       [](const Mark& a, const Mark& b) { return a.ccc < b.ccc; });
      i = j;
    }
    return Status::ok();
  }

  // The canonical composite of a and b, or 0.
  static char32_t composite(char32_t a, char32_t b) {
    utf8proc_int32_t buf[2] = {static_cast<utf8proc_int32_t>(a), static_cast<utf8proc_int32_t>(b)};
    const utf8proc_ssize_t n = utf8proc_normalize_utf32(buf, 2, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE |
                                                                                                UTF8PROC_STABLE));
    return n == 1 ? static_cast<char32_t>(buf[0]) : 0;
  }

  // Canonical composition over the decomposed sequence; a composed character's change absorbs the removed one.
  static void compose(std::vector<Mark>& seq) {
    std::vector<Mark> out;
    int64_t starter = -1;  // index in out
    int last_ccc = 0;
    for (const Mark& m : seq) {
      if (starter >= 0 && !m.frozen && !out[static_cast<size_t>(starter)].frozen) {
        const bool adjacent = static_cast<size_t>(starter) + 1 == out.size();
        const bool unblocked = adjacent || (last_ccc != 0 && last_ccc < m.ccc);
        if (unblocked) {
          Mark& s = out[static_cast<size_t>(starter)];
          if (const char32_t c = composite(s.c, m.c); c != 0) {
            s.c = c;
            s.change += m.change - 1;
            s.ccc = combining_class(c);
            continue;
          }
        }
      }
      if (m.ccc == 0 || m.frozen) {
        starter = static_cast<int64_t>(out.size());
        last_ccc = 0;
      } else {
        last_ccc = m.ccc;
      }
      out.push_back(m);
    }
    seq = std::move(out);
  }

  Status append_normalized(std::string_view text, std::string& out) const {
    if (text.empty()) return Status::ok();
    int options = UTF8PROC_STABLE;
    switch (form_) {
      case Form::kNfc: options |= UTF8PROC_COMPOSE; break;
      case Form::kNfd: options |= UTF8PROC_DECOMPOSE; break;
      case Form::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
      case Form::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                     &mapped, static_cast<utf8proc_option_t>(options));
    if (n < 0) {
      std::free(mapped);
      return invalid_argument(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
    }
    out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
    std::free(mapped);
    return Status::ok();
  }

 private:
  Form form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  Status normalize_aligned(std::string& text, bool&, Alignment& align) const override {
    map_chars_aligned(text, align, [](char32_t c) -> std::u32string {
      if (c < 0x80) return std::u32string(1, c >= 'A' && c <= 'Z' ? c + 32 : c);
      if (c == 0x130) return U"i\u0307";
      return std::u32string(1, to_lowercase(c));
    });
    return Status::ok();
  }
  Status normalize(std::string& text, bool&) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      i += len;
      if (c < 0x80) {
        out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      } else if (c == 0x130) {  // the one unconditional multi-character lowercase mapping
        out.append("i\xCC\x87");
      } else {
        unicode::append_utf8(out, to_lowercase(c));
      }
    }
    text = std::move(out);
    return Status::ok();
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}

  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    std::vector<char32_t> chars;
    for (size_t i = 0; i < text.size();) {
      size_t len;
      chars.push_back(unicode::decode(text, i, &len));
      i += len;
    }
    const size_t n = chars.size();
    size_t leading = 0, trailing = 0;
    if (left_) while (leading < n && unicode::is_whitespace(chars[leading])) ++leading;
    if (right_) while (trailing < n && unicode::is_whitespace(chars[n - 1 - trailing])) ++trailing;
    if (leading == 0 && trailing == 0) return Status::ok();
    std::vector<CharChange> changes;
    for (size_t i = leading; i + trailing < n; ++i)
      changes.push_back({chars[i], i + trailing + 1 == n ? -static_cast<int32_t>(trailing) : 0});
    if (leading > 0 && leading + trailing < n) at_origin = false;
    transform(text, align, changes, leading);
    return Status::ok();
  }

  Status normalize(std::string& text, bool& at_origin) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t len;
        if (!unicode::is_whitespace(unicode::decode(text, begin, &len))) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t len;
        if (!unicode::is_whitespace(unicode::decode(text, start, &len))) break;
        end = start;
      }
    }
    if (begin > 0 && begin < end) at_origin = false;
    text = text.substr(begin, end - begin);
    return Status::ok();
  }

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    size_t len;
    if (!text.empty() && is_combining_mark(unicode::decode(text, 0, &len))) at_origin = false;
    map_chars_aligned(text, align, [](char32_t c) {
      return is_combining_mark(c) ? std::u32string() : std::u32string(1, c);
    });
    return Status::ok();
  }
  Status normalize(std::string& text, bool& at_origin) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      if (!is_combining_mark(c)) {
        out.append(text, i, len);
      } else if (i == 0) {
        at_origin = false;
      }
      i += len;
    }
    text = std::move(out);
    return Status::ok();
  }
};

class NmtNormalizer final : public Normalizer {
 public:
  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    std::string copy = text;
    LS_RETURN_IF_ERROR(normalize(copy, at_origin));
    map_chars_aligned(text, align, [](char32_t c) {
      if (nmt_drops(c)) return std::u32string();
      return std::u32string(1, nmt_to_space(c) ? U' ' : c);
    });
    return Status::ok();
  }
  Status normalize(std::string& text, bool& at_origin) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      const bool drop = nmt_drops(c);
      const bool to_space = nmt_to_space(c);
      if (drop) {
        if (out.empty()) at_origin = false;
      } else if (to_space) {
        out.push_back(' ');
      } else {
        out.append(text, i, len);
      }
      i += len;
    }
    text = std::move(out);
    return Status::ok();
  }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  Status normalize_aligned(std::string& text, bool&, Alignment& align) const override {
    prepend_aligned(text, align, prefix_);
    return Status::ok();
  }
  Status normalize(std::string& text, bool&) const override {
    if (!text.empty()) text.insert(0, prefix_);
    return Status::ok();
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}

  // Hugging Face replace: each match becomes the content's characters, inserted after the removed match (so
  // they align with its last byte).
  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    LS_RETURN_IF_ERROR(regex_->for_each_match(text, [&](size_t start, size_t end) { matches.emplace_back(start, end); }));
    std::vector<CharChange> content;
    for (size_t i = 0; i < content_.size();) {
      size_t len;
      content.push_back({unicode::decode(content_, i, &len), 1});
      i += len;
    }
    bool removed_start = false;
    std::ptrdiff_t shift = 0;
    for (const auto& [start, end] : matches) {
      if (start == 0 && end > 0 && content_.empty()) removed_start = true;
      const size_t s = static_cast<size_t>(static_cast<std::ptrdiff_t>(start) + shift);
      const size_t e = static_cast<size_t>(static_cast<std::ptrdiff_t>(end) + shift);
      const size_t removed = unicode::count_chars(std::string_view(text).substr(s, e - s));
      transform_range(text, align, s, e, content, removed);
      shift += static_cast<std::ptrdiff_t>(content_.size()) - static_cast<std::ptrdiff_t>(end - start);
    }
    if (removed_start && !text.empty()) at_origin = false;
    return Status::ok();
  }

  Status normalize(std::string& text, bool& at_origin) const override {
    std::string out;
    out.reserve(text.size());
    size_t prev = 0;
    bool removed_start = false;
    LS_RETURN_IF_ERROR(regex_->for_each_match(text, [&](size_t start, size_t end) {
      out.append(text, prev, start - prev);
      out.append(content_);
      if (start == 0 && end > 0 && content_.empty()) removed_start = true;
      prev = end;
    }));
    out.append(text, prev, std::string::npos);
    if (removed_start && !out.empty()) at_origin = false;
    text = std::move(out);
    return Status::ok();
  }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  Status normalize_aligned(std::string& text, bool&, Alignment& align) const override {
    map_chars_aligned(text, align, byte_level::encoded_chars);
    return Status::ok();
  }
  Status normalize(std::string& text, bool&) const override {
    std::string out;
    byte_level::append_encoded(out, text);
    text = std::move(out);
    return Status::ok();
  }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const override {
    for (const auto& step : steps_) LS_RETURN_IF_ERROR(step->normalize_aligned(text, at_origin, align));
    return Status::ok();
  }
  Status normalize(std::string& text, bool& at_origin) const override {
    for (const auto& step : steps_) LS_RETURN_IF_ERROR(step->normalize(text, at_origin));
    return Status::ok();
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

Result<std::unique_ptr<Regex>> replace_pattern(const Json& config) {
  const Json* pattern = find_field(config, "pattern");
  if (!pattern || !pattern->is_object()) return invalid_argument("Replace needs a \"pattern\" object");
  if (const Json* s = find_field(*pattern, "String"); s && s->is_string()) {
    return Regex::compile(escape_regex(s->get<std::string>()));
  }
  if (const Json* r = find_field(*pattern, "Regex"); r && r->is_string()) {
    return Regex::compile(r->get<std::string>());
  }
  return invalid_argument("Replace pattern must have a \"String\" or \"Regex\" string");
}

Result<std::unique_ptr<Normalizer>> make_at_depth(const Json& config, int depth) {
  if (depth > 32) return invalid_argument("normalizer Sequence nested too deeply");
  if (!config.is_object()) return invalid_argument("normalizer must be an object");
  LS_ASSIGN_OR_RETURN(const std::string type, required_string(config, "type"));
  std::unique_ptr<Normalizer> n;
  if (type == "NFC") {
    n.reset(new UnicodeNormalizer(Form::kNfc));
  } else if (type == "NFD") {
    n.reset(new UnicodeNormalizer(Form::kNfd));
  } else if (type == "NFKC") {
    n.reset(new UnicodeNormalizer(Form::kNfkc));
  } else if (type == "NFKD") {
    n.reset(new UnicodeNormalizer(Form::kNfkd));
  } else if (type == "Lowercase") {
    n.reset(new LowercaseNormalizer());
  } else if (type == "StripAccents") {
    n.reset(new StripAccentsNormalizer());
  } else if (type == "Nmt") {
    n.reset(new NmtNormalizer());
  } else if (type == "ByteLevel") {
    n.reset(new ByteLevelNormalizer());
  } else if (type == "Strip") {
    LS_ASSIGN_OR_RETURN(const bool left, optional_bool(config, "strip_left", true));
    LS_ASSIGN_OR_RETURN(const bool right, optional_bool(config, "strip_right", true));
    n.reset(new StripNormalizer(left, right));
  } else if (type == "Prepend") {
    LS_ASSIGN_OR_RETURN(std::string prefix, required_string(config, "prepend"));
    n.reset(new PrependNormalizer(std::move(prefix)));
  } else if (type == "Replace") {
    LS_ASSIGN_OR_RETURN(auto regex, replace_pattern(config));
    LS_ASSIGN_OR_RETURN(std::string content, required_string(config, "content"));
    n.reset(new ReplaceNormalizer(std::move(regex), std::move(content)));
  } else if (type == "Sequence") {
    const Json* list = find_field(config, "normalizers");
    if (!list || !list->is_array()) return invalid_argument("Sequence needs a \"normalizers\" array");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const Json& item : *list) {
      LS_ASSIGN_OR_RETURN(auto step, make_at_depth(item, depth + 1));
      steps.push_back(std::move(step));
    }
    n.reset(new SequenceNormalizer(std::move(steps)));
  } else {
    return unsupported("unsupported normalizer type \"" + type + "\"");
  }
  return n;
}

}  // namespace

Result<std::unique_ptr<Normalizer>> make_normalizer(const Json& config) { return make_at_depth(config, 0); }

}  // namespace ls
