// pre_tokenizer.h: the PreTokenizer interface and the factory that builds one from a tokenizer.json
// "pre_tokenizer" object (Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation,
// BertPreTokenizer, Sequence). An unknown type is an error naming it.
#pragma once

#include <memory>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/piece.h"

namespace ls {

class Regex;

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every non-added piece further (and may rewrite its text).
  virtual Status pre_tokenize(std::vector<Piece>& pieces) const = 0;
  // Asks the last step, when it is ByteLevel, to leave the byte -> character mapping to the model.
  // Returns whether it agreed. Called once at load, before any use.
  virtual bool defer_byte_mapping() { return false; }
};

Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const Json& config);

// Builders of the individual types (pre_tokenizers.cpp), used by the factory.
Result<std::unique_ptr<PreTokenizer>> make_byte_level_pre_tokenizer(const Json& config);
Result<std::unique_ptr<PreTokenizer>> make_metaspace_pre_tokenizer(const Json& config);
Result<std::unique_ptr<PreTokenizer>> make_digits_pre_tokenizer(const Json& config);
Result<std::unique_ptr<PreTokenizer>> make_whitespace_pre_tokenizer();
Result<std::unique_ptr<PreTokenizer>> make_whitespace_split_pre_tokenizer();
Result<std::unique_ptr<PreTokenizer>> make_punctuation_pre_tokenizer(const Json& config);
Result<std::unique_ptr<PreTokenizer>> make_bert_pre_tokenizer();

// The two shapes the types are built from: a split at a regex's matches (pre_tokenizers.cpp; Split, Whitespace)
// and a sequence of steps (pre_tokenizer.cpp; Sequence, BertPreTokenizer).
std::unique_ptr<PreTokenizer> make_regex_split_pre_tokenizer(std::unique_ptr<Regex> regex, SplitBehavior behavior,
                                                             bool invert);
std::unique_ptr<PreTokenizer> make_pre_tokenizer_sequence(std::vector<std::unique_ptr<PreTokenizer>> steps);

}  // namespace ls
