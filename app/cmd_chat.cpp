// cmd_chat.cpp: the `chat-template` subcommand. Reads {"messages": [...], "add_generation_prompt": bool,
// "tools": [...]?, ...} on stdin, renders the model directory's chat template as transformers would (every
// other top-level key is passed to the template as a variable, e.g. enable_thinking or date_string) and prints
// the prompt exactly, with no newline added. Any failure is one line on stderr and exit code 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "chat/chat_template.h"
#include "commands.h"

namespace ls::app {
namespace {

int fail(const Status& status) {
  std::string message = status.to_string();
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "loraserve: chat-template: %s\n", message.c_str());
  return 1;
}

Result<std::string> render_request(const std::string& model_dir, const std::string& body) {
  using chat::OrderedJson;
  const OrderedJson request = OrderedJson::parse(body, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) return invalid_argument("stdin must be a JSON object");
  auto messages = request.find("messages");
  if (messages == request.end()) return invalid_argument("stdin JSON has no \"messages\"");
  bool add_generation_prompt = false;
  if (auto it = request.find("add_generation_prompt"); it != request.end() && !it->is_null()) {
    if (!it->is_boolean()) return invalid_argument("\"add_generation_prompt\" must be a boolean");
    add_generation_prompt = it->get<bool>();
  }
  OrderedJson tools;
  if (auto it = request.find("tools"); it != request.end()) tools = *it;
  OrderedJson kwargs = OrderedJson::object();
  for (const auto& [key, value] : request.items())
    if (key != "messages" && key != "add_generation_prompt" && key != "tools") kwargs[key] = value;
  LS_ASSIGN_OR_RETURN(chat::ChatTemplate tmpl, chat::ChatTemplate::from_model_dir(model_dir));
  return tmpl.render(*messages, add_generation_prompt, tools, kwargs);
}

}  // namespace

void register_chat_commands(CLI::App& app, CommandRunner& runner) {
  auto model = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("chat-template", "render a model's chat template for a JSON request on stdin");
  cmd->add_option("--model", *model, "model directory (tokenizer_config.json / chat_template.jinja)")->required();
  cmd->callback([&runner, model] {
    runner = [model] {
      std::ios::sync_with_stdio(false);
      const std::string body(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>{});
      auto prompt = render_request(*model, body);
      if (!prompt.is_ok()) return fail(prompt.status());
      std::fwrite(prompt.value().data(), 1, prompt.value().size(), stdout);
      return std::fflush(stdout) == 0 ? 0 : 1;
    };
  });
}

}  // namespace ls::app
