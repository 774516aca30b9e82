// chat_template.h: a model's chat template(s) and special tokens, loaded the way transformers loads them, and
// rendered the way transformers' apply_chat_template renders them (messages without their null-valued keys,
// reasoning fields aliased, tools/documents passed as none when absent, special tokens and extra kwargs as
// variables).
//
// Request JSON must be parsed with nlohmann::ordered_json: transformers keeps the key order of tool schemas and
// messages (Python dicts), and `tojson` prints keys in that order.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/json_value.h"
#include "chat/template.h"

namespace ls::chat {

class ChatTemplate {
 public:
  // Loads from a model directory: chat_template.jinja (+ additional_chat_templates/*.jinja) when present, else
  // tokenizer_config.json's chat_template (a string or a list of {name, template}), else chat_template.json.
  // Special tokens come from tokenizer_config.json (strings or {"content": ...}).
  static Result<ChatTemplate> from_model_dir(const std::string& dir);

  // From a parsed tokenizer_config.json object.
  static Result<ChatTemplate> from_tokenizer_config(const OrderedJson& config);

  // One template and explicit special tokens (name -> text, e.g. {"bos_token", "<s>"}).
  static Result<ChatTemplate> from_source(const std::string& source,
                                          std::vector<std::pair<std::string, std::string>> special_tokens = {});

  // Renders a conversation. messages: a non-empty array of message objects. tools: an array, or null when the
  // request has none. kwargs: an object of extra template variables (enable_thinking, date_string, documents,
  // ...), or null.
  Result<std::string> render(const OrderedJson& messages, bool add_generation_prompt, const OrderedJson& tools,
                             const OrderedJson& kwargs) const;

  void set_render_options(RenderOptions options) { options_ = std::move(options); }
  const std::vector<std::pair<std::string, std::string>>& special_tokens() const { return special_tokens_; }
  // Names of the templates ("default", "tool_use", ...).
  std::vector<std::string> template_names() const;

 private:
  ChatTemplate() = default;
  Status add_template(const std::string& name, const std::string& source);
  Result<const Template*> select(bool has_tools) const;

  std::map<std::string, Template> templates_;
  std::vector<std::pair<std::string, std::string>> special_tokens_;
  RenderOptions options_;
};

}  // namespace ls::chat
