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

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(Form form) : form_(form) {}

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
  Status normalize(std::string& text, bool& at_origin) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      size_t len;
      const char32_t c = unicode::decode(text, i, &len);
      const bool drop = (c >= 0x01 && c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                        c == 0x8F || c == 0x9F;
      const bool to_space = c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x1680 ||
                            (c >= 0x200B && c <= 0x200F) || c == 0x2028 || c == 0x2029 || c == 0x2581 ||
                            c == 0xFEFF || c == 0xFFFD;
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
