// pre_tokenizer.cpp: the pre-tokenizer factory, Split's pattern (regex or escaped string) and Sequence.
#include "tokenizer/pre_tokenizer.h"

#include "tokenizer/regex.h"

namespace ls {
namespace {

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}

  Status pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) LS_RETURN_IF_ERROR(step->pre_tokenize(pieces));
    return Status::ok();
  }
  bool defer_byte_mapping() override { return !steps_.empty() && steps_.back()->defer_byte_mapping(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// A {"String": s} or {"Regex": r} pattern as a compiled regex (strings are escaped, as Hugging Face does).
Result<std::unique_ptr<Regex>> compile_pattern(const Json& config) {
  const Json* pattern = find_field(config, "pattern");
  if (!pattern || !pattern->is_object()) return invalid_argument("field \"pattern\" must be an object");
  if (const Json* s = find_field(*pattern, "String")) {
    if (!s->is_string()) return invalid_argument("pattern \"String\" must be a string");
    return Regex::compile(escape_regex(s->get<std::string>()));
  }
  if (const Json* r = find_field(*pattern, "Regex")) {
    if (!r->is_string()) return invalid_argument("pattern \"Regex\" must be a string");
    return Regex::compile(r->get<std::string>());
  }
  return invalid_argument("pattern must have a \"String\" or \"Regex\" key");
}

Result<std::unique_ptr<PreTokenizer>> make_split(const Json& config) {
  LS_ASSIGN_OR_RETURN(auto regex, compile_pattern(config));
  LS_ASSIGN_OR_RETURN(const SplitBehavior behavior, parse_split_behavior(config, "behavior"));
  LS_ASSIGN_OR_RETURN(const bool invert, optional_bool(config, "invert", false));
  return make_regex_split_pre_tokenizer(std::move(regex), behavior, invert);
}

Result<std::unique_ptr<PreTokenizer>> make_sequence(const Json& config, int depth);

Result<std::unique_ptr<PreTokenizer>> make_at_depth(const Json& config, int depth) {
  if (depth > 32) return invalid_argument("pre_tokenizer Sequence nested too deeply");
  if (!config.is_object()) return invalid_argument("pre_tokenizer must be an object");
  LS_ASSIGN_OR_RETURN(const std::string type, required_string(config, "type"));
  if (type == "Sequence") return make_sequence(config, depth);
  if (type == "Split") return make_split(config);
  if (type == "ByteLevel") return make_byte_level_pre_tokenizer(config);
  if (type == "Metaspace") return make_metaspace_pre_tokenizer(config);
  if (type == "Digits") return make_digits_pre_tokenizer(config);
  if (type == "Whitespace") return make_whitespace_pre_tokenizer();
  if (type == "WhitespaceSplit") return make_whitespace_split_pre_tokenizer();
  if (type == "Punctuation") return make_punctuation_pre_tokenizer(config);
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  return unsupported("unsupported pre_tokenizer type \"" + type + "\"");
}

Result<std::unique_ptr<PreTokenizer>> make_sequence(const Json& config, int depth) {
  const Json* list = find_field(config, "pretokenizers");
  if (!list || !list->is_array()) return invalid_argument("Sequence needs a \"pretokenizers\" array");
  std::vector<std::unique_ptr<PreTokenizer>> steps;
  for (const Json& item : *list) {
    LS_ASSIGN_OR_RETURN(auto step, make_at_depth(item, depth + 1));
    steps.push_back(std::move(step));
  }
  return make_pre_tokenizer_sequence(std::move(steps));
}

}  // namespace

Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const Json& config) { return make_at_depth(config, 0); }

std::unique_ptr<PreTokenizer> make_pre_tokenizer_sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) {
  return std::unique_ptr<PreTokenizer>(new SequencePreTokenizer(std::move(steps)));
}

}  // namespace ls
