// regex.h: the PCRE2 regex used by Split, ByteLevel, Replace and Whitespace. Patterns in tokenizer.json are
// written for Oniguruma (Hugging Face `tokenizers` compiles them with it); translate_oniguruma() rewrites
// the few escapes whose Unicode meaning differs in PCRE2 so both engines match the same characters.
// Matching is UTF + UCP with the JIT. Iteration over matches follows the Rust onig crate: an empty match
// right where the previous match ended is skipped.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ls {

class Regex {
 public:
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Compiles an Oniguruma-style pattern (as written in tokenizer.json).
  static Result<std::unique_ptr<Regex>> compile(std::string_view pattern);

  // Calls on_match(start, end) for each match, left to right. Fails only when PCRE2 gives up
  // (match or JIT limits on hostile input).
  Status for_each_match(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// Rewrites \s, \S, \w, \W, \h and \H into explicit Unicode classes with Oniguruma's meaning.
std::string translate_oniguruma(std::string_view pattern);

// Escapes every metacharacter so the pattern matches the literal text.
std::string escape_regex(std::string_view literal);

}  // namespace ls
