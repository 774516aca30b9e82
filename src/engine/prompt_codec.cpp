// prompt_codec.cpp: tokenizer + chat template + stop ids of a model directory.
#include "engine/prompt_codec.h"

#include <algorithm>
#include <filesystem>

#include "core/json.h"

namespace ls {
namespace {

void add_ids(const Json* field, std::vector<int64_t>& ids) {
  if (!field) return;
  std::vector<Json> values = field->is_array() ? field->get<std::vector<Json>>() : std::vector<Json>{*field};
  for (const Json& v : values)
    if (v.is_number_integer() && std::find(ids.begin(), ids.end(), v.get<int64_t>()) == ids.end())
      ids.push_back(v.get<int64_t>());
}

}  // namespace

std::vector<int64_t> eos_ids_from_configs(const std::string& dir) {
  std::vector<int64_t> ids;
  for (const char* file : {"/config.json", "/generation_config.json"}) {
    auto json = read_json_file(dir + file);
    if (json.is_ok()) add_ids(find_field(json.value(), "eos_token_id"), ids);
  }
  return ids;
}

Result<PromptCodec> PromptCodec::load(const std::string& dir) {
  PromptCodec codec;
  auto tokenizer = Tokenizer::load(dir + "/tokenizer.json");
  if (!tokenizer.is_ok()) return tokenizer.status();
  codec.tokenizer_ = std::move(tokenizer).value();
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir + "/tokenizer_config.json", ec) || fs::exists(dir + "/chat_template.jinja", ec)) {
    auto chat = chat::ChatTemplate::from_model_dir(dir);
    // A tokenizer_config.json without a chat template is normal (base models); --chat then fails clearly.
    if (chat.is_ok()) codec.chat_ = std::move(chat).value();
  }
  codec.stop_ids_ = eos_ids_from_configs(dir);
  if (codec.chat_) {
    for (const auto& [name, text] : codec.chat_->special_tokens()) {
      if (name != "eos_token") continue;
      const int32_t id = codec.tokenizer_->token_to_id(text);
      if (id >= 0 && std::find(codec.stop_ids_.begin(), codec.stop_ids_.end(), id) == codec.stop_ids_.end())
        codec.stop_ids_.push_back(id);
    }
  }
  return codec;
}

Result<std::string> PromptCodec::render_user_message(const std::string& prompt) const {
  if (!chat_) return invalid_argument("the model has no chat template (tokenizer_config.json chat_template)");
  chat::OrderedJson messages = chat::OrderedJson::array();
  messages.push_back({{"role", "user"}, {"content", prompt}});
  return chat_->render(messages, true, chat::OrderedJson(), chat::OrderedJson());
}

Result<std::vector<int32_t>> PromptCodec::encode(const std::string& prompt, bool chat) const {
  if (!chat) return tokenizer_->encode(prompt, true);
  LS_ASSIGN_OR_RETURN(std::string text, render_user_message(prompt));
  return tokenizer_->encode(text, false);
}

Result<std::string> PromptCodec::decode(const std::vector<int32_t>& ids) const {
  return tokenizer_->decode(ids, true);
}

}  // namespace ls
