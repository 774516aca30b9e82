// chat_request.cpp: /v1/chat/completions: messages (text content only) through the model's chat template (or a
// per-request `chat_template`), with vLLM's add_generation_prompt / continue_final_message / tools rules, then
// tokenized without special tokens (the template has them) and checked against the context length.
#include <algorithm>

#include "chat/chat_template.h"
#include "server/openai_request.h"

namespace ls::server {
namespace {

// A copy of the messages with list-of-parts content joined into one string (vLLM's "string" content format)
// and keys whose value is null dropped; anything but text parts is refused.
Result<OJson> normalize_messages(const OJson& messages) {
  if (!messages.is_array() || messages.empty()) return invalid_argument("`messages` must be a non-empty list");
  OJson out = OJson::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const OJson& m = messages[i];
    const std::string where = "`messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return invalid_argument(where + "` must be an object");
    const Fields f(m, "messages[" + std::to_string(i) + "].");
    if (!f.get("role")) return invalid_argument(where + ".role` is required");
    LS_ASSIGN_OR_RETURN(auto role, f.string("role"));
    OJson msg = OJson::object();
    for (auto it = m.begin(); it != m.end(); ++it)
      if (!it.value().is_null()) msg[it.key()] = it.value();
    if (const OJson* content = f.get("content")) {
      if (content->is_array()) {
        std::string text;
        for (const OJson& part : *content) {
          const OJson* type = part.is_object() ? Fields(part).get("type") : nullptr;
          if (!type || !type->is_string())
            return invalid_argument(where + ".content` parts must be objects with a `type`");
          const std::string t = type->get<std::string>();
          if (t != "text")
            return unsupported(where + ".content`: content part type \"" + t +
                               "\" is not supported: this server serves text-only models");
          const OJson* part_text = Fields(part).get("text");
          if (!part_text || !part_text->is_string())
            return invalid_argument(where + ".content`: a text part needs a string `text`");
          if (!text.empty()) text += "\n";
          text += part_text->get<std::string>();
        }
        msg["content"] = text;
      } else if (!content->is_string()) {
        return invalid_argument(where + ".content` must be a string or a list of content parts, got " +
                                json_type_name(*content));
      }
    }
    (void)role;
    out.push_back(std::move(msg));
  }
  return out;
}

// tools / tool_choice: tools reach the template only with tool_choice "none" left out of the picture; "auto"
// needs a tool-call parser (vLLM's flags) and "required" or a named function needs guided decoding.
Result<OJson> parse_tools(const Fields& f) {
  const OJson* tools = f.get("tools");
  const OJson* choice = f.get("tool_choice");
  if (tools && !tools->is_array()) return invalid_argument("`tools` must be a list");
  std::string mode = tools && !tools->empty() ? "auto" : "none";
  if (choice) {
    if (choice->is_string()) {
      mode = choice->get<std::string>();
      if (mode != "none" && mode != "auto" && mode != "required")
        return invalid_argument("`tool_choice` must be \"none\", \"auto\", \"required\" or a named function");
    } else if (choice->is_object()) {
      mode = "named";
    } else {
      return invalid_argument("`tool_choice` must be a string or an object");
    }
  }
  if (!tools || tools->empty()) {
    if (mode == "required" || mode == "named")
      return invalid_argument("When using `tool_choice`, `tools` must be set.");
    return OJson();
  }
  if (mode == "auto")
    return unsupported("\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set");
  if (mode == "required" || mode == "named")
    return unsupported("tool_choice \"" + mode + "\" is not supported: it needs guided decoding");
  return OJson();  // "none": vLLM leaves the tools out of the prompt
}

// The rendered prompt text.
Result<std::string> render_prompt(const Fields& f, const ApiModel& model, const OJson& messages, const OJson& tools) {
  LS_ASSIGN_OR_RETURN(auto add_generation_prompt, f.boolean("add_generation_prompt"));
  LS_ASSIGN_OR_RETURN(auto continue_final, f.boolean("continue_final_message"));
  LS_ASSIGN_OR_RETURN(auto template_source, f.string("chat_template"));
  LS_ASSIGN_OR_RETURN(const OJson* kwargs_json, f.object("chat_template_kwargs"));
  const bool cont = continue_final.value_or(false);
  const bool add_gen = add_generation_prompt.value_or(true);
  if (cont && add_gen)
    return invalid_argument("Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
  if (cont && messages.back().value("role", "") != "assistant")
    return invalid_argument("`continue_final_message` needs the last message to be from the assistant");

  const chat::ChatTemplate* tmpl = model.codec->chat_template();
  std::optional<chat::ChatTemplate> custom;
  if (template_source) {
    auto compiled = chat::ChatTemplate::from_source(*template_source, tmpl ? tmpl->special_tokens()
                                                   : std::vector<std::pair<std::string, std::string>>{});
    if (!compiled.is_ok()) return invalid_argument("`chat_template`: " + compiled.status().message());
    custom = std::move(compiled).value();
    tmpl = &*custom;
  }
  if (!tmpl)
    return invalid_argument("As of transformers v4.44, default chat template is no longer allowed, so you must "
                            "provide a chat template if the tokenizer does not define one.");
  OJson kwargs = kwargs_json ? *kwargs_json : OJson::object();
  if (const OJson* documents = f.get("documents")) kwargs["documents"] = *documents;
  auto text = tmpl->render(messages, add_gen, tools, kwargs);
  if (!text.is_ok()) return invalid_argument("chat template error: " + text.status().message());
  std::string prompt = std::move(text).value();
  if (cont) {
    // Cut after the final message's content, as transformers' continue_final_message does.
    const std::string last = messages.back().value("content", "");
    const size_t at = last.empty() ? std::string::npos : prompt.rfind(last);
    if (at != std::string::npos) prompt.resize(at + last.size());
  }
  return prompt;
}

}  // namespace

Result<OpenAiRequest> parse_chat_request(const OJson& body, const ApiModel& model) {
  OpenAiRequest r;
  r.kind = OpenAiKind::kChat;
  const Fields f(body);
  if (!f.get("messages")) return invalid_argument("`messages` is required");
  LS_RETURN_IF_ERROR(parse_openai_common(f, model, r));
  LS_ASSIGN_OR_RETURN(OJson messages, normalize_messages(*f.get("messages")));
  LS_ASSIGN_OR_RETURN(auto logprobs, f.boolean("logprobs"));
  LS_ASSIGN_OR_RETURN(auto top_logprobs, f.integer("top_logprobs"));
  const int32_t max_lp = model.limits.max_logprobs;
  if (top_logprobs && *top_logprobs < 0) return invalid_argument("`top_logprobs` must be a positive value.");
  if (top_logprobs && *top_logprobs > 0 && !logprobs.value_or(false))
    return invalid_argument("when using `top_logprobs`, `logprobs` must be set to true.");
  if (top_logprobs && *top_logprobs > max_lp)
    return invalid_argument("Requested sample logprobs of " + std::to_string(*top_logprobs) +
                            ", which is greater than max allowed: " + std::to_string(max_lp));
  r.logprobs = logprobs.value_or(false) ? static_cast<int32_t>(top_logprobs.value_or(0)) : -1;
  LS_ASSIGN_OR_RETURN(OJson tools, parse_tools(f));
  LS_ASSIGN_OR_RETURN(r.templated_text, render_prompt(f, model, messages, tools));
  LS_ASSIGN_OR_RETURN(auto add_special, f.boolean("add_special_tokens"));
  auto ids = model.tokenizer().encode(r.templated_text, add_special.value_or(false));
  if (!ids.is_ok()) return invalid_argument("tokenizer error: " + ids.status().message());
  if (ids.value().empty()) return invalid_argument("the prompt is empty: it tokenizes to no tokens");
  LS_ASSIGN_OR_RETURN(auto truncate, f.integer("truncate_prompt_tokens"));
  if (truncate && *truncate >= 1 && static_cast<int64_t>(ids.value().size()) > *truncate)
    ids.value().erase(ids.value().begin(), ids.value().end() - *truncate);
  LS_RETURN_IF_ERROR(resolve_max_tokens(f, model, r, static_cast<int64_t>(ids.value().size())));
  r.prompts.push_back(std::move(ids).value());
  LS_ASSIGN_OR_RETURN(auto echo, f.boolean("echo"));
  r.echo = echo.value_or(false);
  const OJson& last = messages.back();
  r.echo_texts.push_back(r.echo && last.value("role", "") == "assistant" && last.contains("content") &&
                                 last["content"].is_string()
                             ? last["content"].get<std::string>()
                             : std::string());
  r.params.logprobs = r.logprobs >= 0 ? r.logprobs : (r.best_of > r.n ? 0 : -1);
  return r;
}

}  // namespace ls::server
