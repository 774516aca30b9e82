// prompt_codec.h: PromptCodec, a model directory's text interface: its tokenizer, its chat template (when it has
// one) and its stop tokens. Turns a user prompt into token ids as transformers does (a raw prompt with the
// tokenizer's special tokens; a chat prompt rendered through the template with add_generation_prompt and
// encoded without adding special tokens again) and generated ids back into text.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace ls {

class PromptCodec {
 public:
  // Loads DIR/tokenizer.json and, when present, the chat template (tokenizer_config.json / chat_template.jinja).
  static Result<PromptCodec> load(const std::string& model_dir);

  // Token ids of `prompt`; with `chat` it is the content of one user message.
  Result<std::vector<int32_t>> encode(const std::string& prompt, bool chat) const;
  // The chat-template text of one user message with the generation prompt appended.
  Result<std::string> render_user_message(const std::string& prompt) const;
  Result<std::string> decode(const std::vector<int32_t>& ids) const;
  // End-of-sequence ids: config.json and generation_config.json eos_token_id, plus the tokenizer's eos_token.
  const std::vector<int64_t>& stop_ids() const { return stop_ids_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The model's chat template, or null when it has none.
  const chat::ChatTemplate* chat_template() const { return chat_ ? &*chat_ : nullptr; }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::optional<chat::ChatTemplate> chat_;
  std::vector<int64_t> stop_ids_;
};

// End-of-sequence ids named by DIR/config.json and DIR/generation_config.json (eos_token_id, an int or a list).
std::vector<int64_t> eos_ids_from_configs(const std::string& model_dir);

}  // namespace ls
