// pre_tokenizers.cpp: the pre-tokenizers with fixed patterns (ByteLevel, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation, BertPreTokenizer), each as Hugging Face `tokenizers` defines it, and the regex
// split that Split shares with Whitespace.
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Rust regex crate's \w (Alphabetic, marks, decimal numbers, connector punctuation, joiners) and \s.
constexpr std::string_view kWhitespacePattern =
    R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\p{White_Space}]+)";


// Spans from a regex's matches, tiling text (Hugging Face's Pattern::find_matches), flags inverted on request.
Status regex_spans(const Regex& regex, std::string_view text, bool invert, std::vector<Span>& spans) {
  spans.clear();
  size_t prev = 0;
  LS_RETURN_IF_ERROR(regex.for_each_match(text, [&](size_t start, size_t end) {
    if (prev != start) spans.push_back({prev, start, invert});
    spans.push_back({start, end, !invert});
    prev = end;
  }));
  if (prev != text.size()) spans.push_back({prev, text.size(), invert});
  return Status::ok();
}

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  Status pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> spans;
    return for_each_split(pieces, [&](Piece& piece, std::vector<Piece>& out) -> Status {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) {
        if (piece.tracked) {
          prepend_aligned(piece.text, piece.align, " ");
        } else {
          piece.text.insert(0, 1, ' ');
        }
      }
      const size_t first = out.size();
      if (regex_) {
        LS_RETURN_IF_ERROR(regex_spans(*regex_, piece.text, false, spans));
        split_piece(piece, spans, SplitBehavior::kIsolated, out);
      } else {
        out.push_back(std::move(piece));
      }
      for (size_t i = first; i < out.size(); ++i) {
        if (defer_) {
          out[i].raw_bytes = true;
        } else if (out[i].tracked) {
          map_chars_aligned(out[i].text, out[i].align, byte_level::encoded_chars);
        } else {
          std::string mapped;
          byte_level::append_encoded(mapped, out[i].text);
          out[i].text = std::move(mapped);
        }
      }
      return Status::ok();
    });
  }
  bool defer_byte_mapping() override {
    defer_ = true;
    return true;
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
  bool defer_ = false;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  Status pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> spans;
    return for_each_split(pieces, [&](Piece& piece, std::vector<Piece>& out) -> Status {
      std::string replaced;
      replaced.reserve(piece.text.size() + replacement_.size());
      const bool starts_with_replacement = piece.text.compare(0, replacement_.size(), replacement_) == 0 ||
                                           (!piece.text.empty() && piece.text[0] == ' ');
      const bool prepend = scheme_ == PrependScheme::kAlways ||
                           (scheme_ == PrependScheme::kFirst && piece.at_origin);
      if (piece.tracked) {
        // Hugging Face: replace the spaces, then prepend (aligned to the first character).
        size_t len;
        const char32_t rep = unicode::decode(replacement_, 0, &len);
        map_chars_aligned(piece.text, piece.align, [rep](char32_t c) { return std::u32string(1, c == U' ' ? rep : c); });
        if (prepend && !starts_with_replacement) prepend_aligned(piece.text, piece.align, replacement_);
        replaced = piece.text;
      } else if (prepend && !starts_with_replacement) {
        replaced.append(replacement_);
      }
      if (!piece.tracked) {
        for (char c : piece.text) {
          if (c == ' ') {
            replaced.append(replacement_);
          } else {
            replaced.push_back(c);
          }
        }
      }
      piece.text = std::move(replaced);
      if (!split_) {
        out.push_back(std::move(piece));
        return Status::ok();
      }
      spans.clear();
      size_t last = 0, i = 0;
      while ((i = piece.text.find(replacement_, last)) != std::string::npos) {
        if (last < i) spans.push_back({last, i, false});
        spans.push_back({i, i + replacement_.size(), true});
        last = i + replacement_.size();
      }
      if (last < piece.text.size()) spans.push_back({last, piece.text.size(), false});
      split_piece(piece, spans, SplitBehavior::kMergedWithNext, out);
      return Status::ok();
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

// Splits on each character matching a predicate (Digits, WhitespaceSplit, Punctuation).
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  CharSplitPreTokenizer(bool (*pred)(char32_t), SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}

  Status pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> spans;
    return for_each_split(pieces, [&](Piece& piece, std::vector<Piece>& out) -> Status {
      char_spans(piece.text, pred_, spans);
      split_piece(piece, spans, behavior_, out);
      return Status::ok();
    });
  }

 private:
  bool (*pred_)(char32_t);
  SplitBehavior behavior_;
};

class RegexSplitPreTokenizer final : public PreTokenizer {
 public:
  RegexSplitPreTokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  Status pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<Span> spans;
    return for_each_split(pieces, [&](Piece& piece, std::vector<Piece>& out) -> Status {
      LS_RETURN_IF_ERROR(regex_spans(*regex_, piece.text, invert_, spans));
      split_piece(piece, spans, behavior_, out);
      return Status::ok();
    });
  }

 private:
  std::unique_ptr<Regex> regex_;
  SplitBehavior behavior_;
  bool invert_;
};

bool is_bert_punctuation(char32_t c) { return unicode::is_punctuation(c); }

}  // namespace

Result<std::unique_ptr<PreTokenizer>> make_byte_level_pre_tokenizer(const Json& config) {
  LS_ASSIGN_OR_RETURN(const bool add_prefix_space, optional_bool(config, "add_prefix_space", true));
  LS_ASSIGN_OR_RETURN(const bool use_regex, optional_bool(config, "use_regex", true));
  std::unique_ptr<Regex> regex;
  if (use_regex) {
    LS_ASSIGN_OR_RETURN(regex, Regex::compile(kGpt2Pattern));
  }
  return std::unique_ptr<PreTokenizer>(new ByteLevelPreTokenizer(add_prefix_space, std::move(regex)));
}

Result<std::unique_ptr<PreTokenizer>> make_metaspace_pre_tokenizer(const Json& config) {
  LS_ASSIGN_OR_RETURN(const std::string replacement, required_string(config, "replacement"));
  if (replacement.empty() || unicode::count_chars(replacement) != 1) {
    return invalid_argument("Metaspace \"replacement\" must be one character");
  }
  LS_ASSIGN_OR_RETURN(const std::string scheme_name, optional_string(config, "prepend_scheme", "always"));
  PrependScheme scheme;
  if (scheme_name == "always") {
    scheme = PrependScheme::kAlways;
  } else if (scheme_name == "first") {
    scheme = PrependScheme::kFirst;
  } else if (scheme_name == "never") {
    scheme = PrependScheme::kNever;
  } else {
    return invalid_argument("Metaspace: unknown prepend_scheme \"" + scheme_name + "\"");
  }
  if (const Json* add = find_field(config, "add_prefix_space")) {
    if (!add->is_boolean()) return invalid_argument("Metaspace \"add_prefix_space\" must be a boolean");
    if (!add->get<bool>()) {
      if (scheme != PrependScheme::kNever) {
        return invalid_argument("Metaspace: add_prefix_space does not match declared prepend_scheme");
      }
    }
  }
  LS_ASSIGN_OR_RETURN(const bool split, optional_bool(config, "split", true));
  return std::unique_ptr<PreTokenizer>(new MetaspacePreTokenizer(replacement, scheme, split));
}

Result<std::unique_ptr<PreTokenizer>> make_digits_pre_tokenizer(const Json& config) {
  LS_ASSIGN_OR_RETURN(const bool individual, optional_bool(config, "individual_digits", false));
  return std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(
      unicode::is_numeric, individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous));
}

Result<std::unique_ptr<PreTokenizer>> make_whitespace_pre_tokenizer() {
  LS_ASSIGN_OR_RETURN(auto regex, Regex::compile(kWhitespacePattern));
  return make_regex_split_pre_tokenizer(std::move(regex), SplitBehavior::kRemoved, true);
}

Result<std::unique_ptr<PreTokenizer>> make_whitespace_split_pre_tokenizer() {
  return std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(unicode::is_whitespace, SplitBehavior::kRemoved));
}

Result<std::unique_ptr<PreTokenizer>> make_punctuation_pre_tokenizer(const Json& config) {
  SplitBehavior behavior = SplitBehavior::kIsolated;
  if (find_field(config, "behavior")) {
    LS_ASSIGN_OR_RETURN(behavior, parse_split_behavior(config, "behavior"));
  }
  return std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(unicode::is_punctuation, behavior));
}

Result<std::unique_ptr<PreTokenizer>> make_bert_pre_tokenizer() {
  auto whitespace = std::unique_ptr<PreTokenizer>(
      new CharSplitPreTokenizer(unicode::is_whitespace, SplitBehavior::kRemoved));
  auto punctuation =
      std::unique_ptr<PreTokenizer>(new CharSplitPreTokenizer(is_bert_punctuation, SplitBehavior::kIsolated));
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  steps.push_back(std::move(whitespace));
  steps.push_back(std::move(punctuation));
  return make_pre_tokenizer_sequence(std::move(steps));
}

std::unique_ptr<PreTokenizer> make_regex_split_pre_tokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior,
                                                             bool invert) {
  return std::unique_ptr<PreTokenizer>(new RegexSplitPreTokenizer(std::move(regex), behavior, invert));
}

}  // namespace ls
