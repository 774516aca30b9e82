// chat_template.cpp: loading templates and special tokens from a model directory, and the transformers-style
// render call.
#include "chat/chat_template.h"

#include "core/file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ls::chat {

namespace {

constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};
constexpr size_t kMaxTemplateBytes = 4 << 20;
constexpr int kMaxJsonDepth = 100;

Result<std::string> read_file(const std::filesystem::path& path) { return ls::read_file(path.string(), kMaxTemplateBytes); }

Result<OrderedJson> read_json(const std::filesystem::path& path) {
  LS_ASSIGN_OR_RETURN(std::string text, read_file(path));
  OrderedJson j = OrderedJson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument(path.string() + " is not valid JSON");
  return j;
}

bool depth_ok(const OrderedJson& j, int depth) {
  if (depth > kMaxJsonDepth) return false;
  if (j.is_array() || j.is_object()) {
    for (const auto& item : j)
      if (!depth_ok(item, depth + 1)) return false;
  }
  return true;
}

// transformers' _alias_reasoning_fields: a message with reasoning under any of its names gets it under
// "thinking" (first) and "reasoning_content".
Value prepare_message(const OrderedJson& m) {
  auto d = std::make_shared<Dict>();
  const OrderedJson* reasoning = nullptr;
  for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
    auto it = m.find(key);
    if (!reasoning && it != m.end() && !it->is_null()) reasoning = &*it;
  }
  if (reasoning) d->entries.emplace_back(Value::string("thinking"), json_to_value(*reasoning));
  for (const auto& [k, v] : m.items()) {
    if (v.is_null()) continue;  // apply_chat_template drops null-valued keys
    d->set(Value::string(k), json_to_value(v));
  }
  if (reasoning) d->set(Value::string("reasoning_content"), json_to_value(*reasoning));
  return Value::dict(std::move(d));
}

}  // namespace

Status ChatTemplate::add_template(const std::string& name, const std::string& source) {
  auto t = Template::compile(source);
  if (!t.is_ok()) return t.status().with_context("chat template '" + name + "'");
  templates_.insert_or_assign(name, std::move(t).value());
  return Status::ok();
}

Result<ChatTemplate> ChatTemplate::from_tokenizer_config(const OrderedJson& config) {
  if (!config.is_object()) return invalid_argument("tokenizer_config.json must be an object");
  ChatTemplate ct;
  for (const char* name : kSpecialTokenNames) {
    auto it = config.find(name);
    if (it == config.end() || it->is_null()) continue;
    if (it->is_string()) {
      ct.special_tokens_.emplace_back(name, it->get<std::string>());
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      ct.special_tokens_.emplace_back(name, (*it)["content"].get<std::string>());
    } else {
      return invalid_argument(std::string("tokenizer_config.json: ") + name + " must be a string or {\"content\": ...}");
    }
  }
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return ct;
  if (it->is_string()) {
    LS_RETURN_IF_ERROR(ct.add_template("default", it->get<std::string>()));
  } else if (it->is_array()) {
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
          !entry["template"].is_string())
        return invalid_argument("tokenizer_config.json: chat_template list entries must be {name, template}");
      LS_RETURN_IF_ERROR(ct.add_template(entry["name"].get<std::string>(), entry["template"].get<std::string>()));
    }
  } else {
    return invalid_argument("tokenizer_config.json: chat_template must be a string or a list");
  }
  return ct;
}

Result<ChatTemplate> ChatTemplate::from_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return not_found("model directory " + dir + " does not exist");
  OrderedJson config = OrderedJson::object();
  if (fs::exists(root / "tokenizer_config.json", ec)) {
    LS_ASSIGN_OR_RETURN(config, read_json(root / "tokenizer_config.json"));
  }
  LS_ASSIGN_OR_RETURN(ChatTemplate ct, from_tokenizer_config(config));
  // transformers v5 saves templates as files; they take precedence over the config's chat_template.
  std::map<std::string, std::string> files;
  if (fs::exists(root / "chat_template.jinja", ec)) {
    LS_ASSIGN_OR_RETURN(files["default"], read_file(root / "chat_template.jinja"));
  }
  if (fs::is_directory(root / "additional_chat_templates", ec)) {
    for (const auto& entry : fs::directory_iterator(root / "additional_chat_templates", ec)) {
      if (entry.path().extension() != ".jinja") continue;
      LS_ASSIGN_OR_RETURN(files[entry.path().stem().string()], read_file(entry.path()));
    }
  }
  if (!files.empty()) {
    ct.templates_.clear();
    for (const auto& [name, source] : files) LS_RETURN_IF_ERROR(ct.add_template(name, source));
  } else if (ct.templates_.empty() && fs::exists(root / "chat_template.json", ec)) {
    LS_ASSIGN_OR_RETURN(OrderedJson j, read_json(root / "chat_template.json"));
    if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string())
      return invalid_argument("chat_template.json must hold {\"chat_template\": \"...\"}");
    LS_RETURN_IF_ERROR(ct.add_template("default", j["chat_template"].get<std::string>()));
  }
  if (ct.templates_.empty()) return not_found("model directory " + dir + " has no chat template");
  return ct;
}

Result<ChatTemplate> ChatTemplate::from_source(const std::string& source,
                                               std::vector<std::pair<std::string, std::string>> special_tokens) {
  ChatTemplate ct;
  ct.special_tokens_ = std::move(special_tokens);
  LS_RETURN_IF_ERROR(ct.add_template("default", source));
  return ct;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : templates_) names.push_back(name);
  return names;
}

Result<const Template*> ChatTemplate::select(bool has_tools) const {
  if (templates_.empty()) return not_found("no chat template");
  if (templates_.size() == 1 && templates_.count("default")) return &templates_.at("default");
  if (has_tools && templates_.count("tool_use")) return &templates_.at("tool_use");
  if (templates_.count("default")) return &templates_.at("default");
  return invalid_argument("this model has multiple chat templates and none is named 'default'");
}

Result<std::string> ChatTemplate::render(const OrderedJson& messages, bool add_generation_prompt,
                                         const OrderedJson& tools, const OrderedJson& kwargs) const {
  if (!messages.is_array()) return invalid_argument("messages must be an array");
  if (messages.empty()) return invalid_argument("cannot apply a chat template to an empty conversation");
  if (!tools.is_null() && !tools.is_array()) return invalid_argument("tools must be an array or null");
  if (!kwargs.is_null() && !kwargs.is_object()) return invalid_argument("template kwargs must be an object");
  if (!depth_ok(messages, 0) || !depth_ok(tools, 0) || !depth_ok(kwargs, 0))
    return invalid_argument("request JSON nests too deeply");
  LS_ASSIGN_OR_RETURN(const Template* t, select(!tools.is_null()));
  std::vector<Value> chat;
  for (const auto& m : messages) {
    if (!m.is_object()) return invalid_argument("chat messages must be objects");
    chat.push_back(prepare_message(m));
  }
  std::vector<std::pair<std::string, Value>> vars;
  vars.emplace_back("messages", Value::list(std::move(chat)));
  vars.emplace_back("tools", tools.is_null() ? Value::none() : json_to_value(tools));
  vars.emplace_back("documents", Value::none());
  vars.emplace_back("add_generation_prompt", Value::boolean(add_generation_prompt));
  for (const auto& [name, text] : special_tokens_) vars.emplace_back(name, Value::string(text));
  if (kwargs.is_object()) {
    for (const auto& [k, v] : kwargs.items()) {
      if (k == "messages" || k == "tools" || k == "add_generation_prompt")
        return invalid_argument("template kwarg '" + k + "' conflicts with a render argument");
      vars.emplace_back(k, json_to_value(v));
    }
  }
  return t->render(vars, options_);
}

}  // namespace ls::chat
