// openai_stream.cpp: OpenAiStreamRenderer, vLLM's chunk sequence for both OpenAI routes: (chat) one role chunk
// per choice, one chunk per update with the new text (and its logprobs), the finishing chunk with
// finish_reason and stop_reason, a usage chunk with no choices when asked for, then [DONE]. A request that
// fails mid-stream gets vLLM's in-stream error object.
#include "server/openai_response.h"

namespace ls::server {

OpenAiStreamRenderer::OpenAiStreamRenderer(const OpenAiRequest& request, const Tokenizer& tokenizer, std::string id,
                                           int64_t created)
    : r_(request),
      tokenizer_(tokenizer),
      logprobs_(request, tokenizer),
      id_(std::move(id)),
      created_(created),
      started_(request.prompts.size() * static_cast<size_t>(request.best_of), false),
      text_offset_(started_.size(), 0),
      generated_(started_.size(), 0) {}

OJson OpenAiStreamRenderer::chunk(OJson choice) const {
  const bool chat = r_.kind == OpenAiKind::kChat;
  OJson choices = OJson::array();
  choices.push_back(std::move(choice));
  return {{"id", id_},
          {"object", chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created_},
          {"model", r_.model_name},
          {"choices", std::move(choices)}};
}

std::string OpenAiStreamRenderer::start() {
  if (r_.kind != OpenAiKind::kChat) return "";
  std::string out;
  for (size_t i = 0; i < started_.size(); ++i) {
    out += openai_event(chunk({{"index", i},
                               {"delta", {{"role", "assistant"}, {"content", ""}}},
                               {"logprobs", OJson()},
                               {"finish_reason", OJson()}}));
    if (!r_.echo_texts[0].empty())
      out += openai_event(chunk({{"index", i},
                                 {"delta", {{"content", r_.echo_texts[0]}}},
                                 {"logprobs", OJson()},
                                 {"finish_reason", OJson()}}));
  }
  return out;
}

void OpenAiStreamRenderer::render(size_t seq, const RequestUpdate& u, std::string& out) {
  const bool chat = r_.kind == OpenAiKind::kChat;
  if (u.finished && u.reason == FinishReason::kError) {
    const Status s = u.error.is_ok() ? internal_error("the request failed") : u.error;
    out += openai_event(error_json(ApiFamily::kOpenAi, to_api_error(ApiFamily::kOpenAi, s)));
    return;
  }
  generated_[seq] = u.generated;
  const size_t prompt = seq / static_cast<size_t>(r_.best_of);
  // Completions echo: the prompt text (and its logprobs) lead the first chunk of each choice.
  const bool first = !started_[seq];
  started_[seq] = true;
  std::string text = u.text;
  if (!chat && first && r_.echo) text = r_.echo_texts[prompt] + text;
  const bool has_logprobs = r_.logprobs >= 0 && (!u.tokens.empty() || (first && r_.echo && !chat));
  if (text.empty() && !u.finished && !has_logprobs) return;

  OJson choice = {{"index", seq}};
  if (chat) {
    choice["delta"] = text.empty() && u.finished ? OJson::object() : OJson{{"content", text}};
    choice["logprobs"] = has_logprobs ? logprobs_.chat(u.tokens) : OJson();
  } else {
    choice["text"] = text;
    OJson logprobs;
    if (has_logprobs) {
      const bool echo_prompt = first && r_.echo;
      logprobs = logprobs_.completion(echo_prompt ? &r_.prompts[prompt] : nullptr, u.prompt_tokens, u.tokens,
                                      text_offset_[seq]);
    }
    choice["logprobs"] = std::move(logprobs);
  }
  choice["finish_reason"] = u.finished ? OJson(openai_finish_reason(u.reason)) : OJson();
  choice["stop_reason"] = u.finished ? openai_stop_reason(u.reason, u.stop_string, u.stop_token) : OJson();
  OJson c = chunk(std::move(choice));
  if (r_.continuous_usage) c["usage"] = openai_usage(u.prompt_len, u.generated);
  out += openai_event(c);
}

std::string OpenAiStreamRenderer::finish(const std::vector<SequenceOutput>& outputs) const {
  std::string out;
  if (r_.include_usage) {
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const auto& p : r_.prompts) prompt_tokens += static_cast<int64_t>(p.size());
    for (const SequenceOutput& o : outputs) completion_tokens += o.generated;
    OJson usage = openai_usage(prompt_tokens, completion_tokens);
    usage.erase("prompt_tokens_details");  // serialized with exclude_none
    out += openai_event({{"id", id_},
                         {"object", r_.kind == OpenAiKind::kChat ? "chat.completion.chunk" : "text_completion"},
                         {"created", created_},
                         {"model", r_.model_name},
                         {"choices", OJson::array()},
                         {"usage", std::move(usage)}});
  }
  out += kOpenAiDone;
  return out;
}

}  // namespace ls::server
