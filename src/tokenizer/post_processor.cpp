// post_processor.cpp: the post-processors and their factory.
#include "tokenizer/post_processor.h"

#include <algorithm>
#include <map>
#include <string>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

// One item of a template: the sequence itself (ids empty) or special token ids.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

class TemplateProcessor final : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<TemplateItem> single) : single_(std::move(single)) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const TemplateItem& item : single_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    ids = std::move(out);
  }
  void process_with_offsets(std::vector<int32_t>& ids, std::vector<Offsets>& offsets,
                            const std::function<std::string(int32_t)>&) const override {
    std::vector<int32_t> out;
    std::vector<Offsets> out_offsets;
    for (const TemplateItem& item : single_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
        out_offsets.insert(out_offsets.end(), offsets.begin(), offsets.end());
      } else {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
        out_offsets.insert(out_offsets.end(), item.ids.size(), Offsets{0, 0});
      }
    }
    ids = std::move(out);
    offsets = std::move(out_offsets);
  }

 private:
  std::vector<TemplateItem> single_;
};

// ByteLevel: no special tokens; with trim_offsets, Hugging Face's process_offsets: a token's leading and
// trailing spaces (the alphabet's space character or whitespace) leave its offsets, except the one space
// add_prefix_space put before the first token.
class ByteLevelProcessor final : public PostProcessor {
 public:
  ByteLevelProcessor(bool trim_offsets, bool add_prefix_space)
      : trim_offsets_(trim_offsets), add_prefix_space_(add_prefix_space) {}
  void process(std::vector<int32_t>&) const override {}
  void process_with_offsets(std::vector<int32_t>& ids, std::vector<Offsets>& offsets,
                            const std::function<std::string(int32_t)>& token_text) const override {
    if (!trim_offsets_) return;
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string token = token_text(ids[i]);
      std::vector<char32_t> chars;
      for (size_t k = 0; k < token.size();) {
        size_t len;
        chars.push_back(unicode::decode(token, k, &len));
        k += len;
      }
      auto is_space = [](char32_t c) { return c == byte_level::byte_to_char(' ') || unicode::is_whitespace(c); };
      size_t leading = 0, trailing = 0;
      while (leading < chars.size() && is_space(chars[leading])) ++leading;
      while (trailing < chars.size() && is_space(chars[chars.size() - 1 - trailing])) ++trailing;
      Offsets& o = offsets[i];
      if (leading > 0) {
        const bool is_first = i == 0 || o.first == 0;
        if (is_first && add_prefix_space_ && leading == 1) leading = 0;
        o.first = std::min<uint32_t>(o.first + static_cast<uint32_t>(leading), o.second);
      }
      if (trailing > 0 && o.second >= trailing) o.second = std::max<uint32_t>(o.second - static_cast<uint32_t>(trailing), o.first);
    }
  }

 private:
  bool trim_offsets_;
  bool add_prefix_space_;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& step : steps_) step->process(ids);
  }
  void process_with_offsets(std::vector<int32_t>& ids, std::vector<Offsets>& offsets,
                            const std::function<std::string(int32_t)>& token_text) const override {
    for (const auto& step : steps_) step->process_with_offsets(ids, offsets, token_text);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

Result<int32_t> parse_u32(const Json& value, const char* what) {
  if (!value.is_number_unsigned() && !value.is_number_integer()) {
    return invalid_argument(std::string(what) + " must be an integer id");
  }
  const int64_t id = value.get<int64_t>();
  if (id < 0 || id > INT32_MAX) return invalid_argument(std::string(what) + " is out of range");
  return static_cast<int32_t>(id);
}

// special_tokens: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, ...}
Result<std::map<std::string, std::vector<int32_t>>> parse_special_tokens(const Json& config) {
  std::map<std::string, std::vector<int32_t>> result;
  const Json* specials = find_field(config, "special_tokens");
  if (!specials) return result;
  if (!specials->is_object()) return invalid_argument("\"special_tokens\" must be an object");
  for (auto it = specials->begin(); it != specials->end(); ++it) {
    const Json* ids = find_field(it.value(), "ids");
    if (!ids || !ids->is_array()) return invalid_argument("special token \"" + it.key() + "\" needs \"ids\"");
    std::vector<int32_t> list;
    for (const Json& id : *ids) {
      LS_ASSIGN_OR_RETURN(const int32_t v, parse_u32(id, "special token id"));
      list.push_back(v);
    }
    result[it.key()] = std::move(list);
  }
  return result;
}

// A template piece: {"SpecialToken": {"id": "<s>", ...}} or {"Sequence": {"id": "A", ...}}.
Result<TemplateItem> parse_template_item(const Json& item, const std::map<std::string, std::vector<int32_t>>& specials) {
  std::string special;
  if (find_field(item, "Sequence")) {
    return TemplateItem{true, {}};
  } else if (const Json* tok = find_field(item, "SpecialToken")) {
    LS_ASSIGN_OR_RETURN(special, required_string(*tok, "id"));
  } else {
    return invalid_argument("template piece must be \"SpecialToken\" or \"Sequence\"");
  }
  auto it = specials.find(special);
  if (it == specials.end()) return invalid_argument("missing SpecialToken \"" + special + "\" in special_tokens");
  return TemplateItem{false, it->second};
}

Result<std::unique_ptr<PostProcessor>> make_template(const Json& config) {
  LS_ASSIGN_OR_RETURN(const auto specials, parse_special_tokens(config));
  const Json* single = find_field(config, "single");
  if (!single) return invalid_argument("TemplateProcessing needs \"single\"");
  std::vector<TemplateItem> items;
  if (single->is_array()) {
    for (const Json& piece : *single) {
      LS_ASSIGN_OR_RETURN(TemplateItem item, parse_template_item(piece, specials));
      items.push_back(std::move(item));
    }
  } else {
    return invalid_argument("TemplateProcessing \"single\" must be a list");
  }
  return std::unique_ptr<PostProcessor>(new TemplateProcessor(std::move(items)));
}

// BertProcessing / RobertaProcessing: {"sep": ["[SEP]", 102], "cls": ["[CLS]", 101]} -> cls A sep.
Result<std::unique_ptr<PostProcessor>> make_cls_sep(const Json& config, bool roberta) {
  int32_t ids[2];
  const char* keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; ++k) {
    const Json* pair = find_field(config, keys[k]);
    if (!pair || !pair->is_array() || pair->size() != 2) {
      return invalid_argument(std::string("field \"") + keys[k] + "\" must be [token, id]");
    }
    LS_ASSIGN_OR_RETURN(ids[k], parse_u32((*pair)[1], keys[k]));
  }
  std::vector<TemplateItem> items = {{false, {ids[0]}}, {true, {}}, {false, {ids[1]}}};
  std::unique_ptr<PostProcessor> tmpl(new TemplateProcessor(std::move(items)));
  if (!roberta) return tmpl;
  // Roberta trims offsets (ByteLevel's rule) before adding its tokens.
  LS_ASSIGN_OR_RETURN(const bool trim, optional_bool(config, "trim_offsets", true));
  LS_ASSIGN_OR_RETURN(const bool prefix, optional_bool(config, "add_prefix_space", true));
  std::vector<std::unique_ptr<PostProcessor>> steps;
  steps.emplace_back(new ByteLevelProcessor(trim, prefix));
  steps.push_back(std::move(tmpl));
  return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(steps)));
}

Result<std::unique_ptr<PostProcessor>> make_at_depth(const Json& config, int depth) {
  if (depth > 32) return invalid_argument("post_processor Sequence nested too deeply");
  if (!config.is_object()) return invalid_argument("post_processor must be an object");
  LS_ASSIGN_OR_RETURN(const std::string type, required_string(config, "type"));
  if (type == "TemplateProcessing") return make_template(config);
  if (type == "ByteLevel") {
    LS_ASSIGN_OR_RETURN(const bool trim, optional_bool(config, "trim_offsets", true));
    LS_ASSIGN_OR_RETURN(const bool prefix, optional_bool(config, "add_prefix_space", true));
    return std::unique_ptr<PostProcessor>(new ByteLevelProcessor(trim, prefix));
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") return make_cls_sep(config, type == "RobertaProcessing");
  if (type == "Sequence") {
    const Json* list = find_field(config, "processors");
    if (!list || !list->is_array()) return invalid_argument("Sequence needs a \"processors\" array");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const Json& item : *list) {
      LS_ASSIGN_OR_RETURN(auto step, make_at_depth(item, depth + 1));
      steps.push_back(std::move(step));
    }
    return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(steps)));
  }
  return unsupported("unsupported post_processor type \"" + type + "\"");
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> make_post_processor(const Json& config) { return make_at_depth(config, 0); }

}  // namespace ls
