// openai_response.cpp: non-streaming OpenAI bodies, choice selection, logprob objects.
#include "server/openai_response.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "core/utf8.h"

namespace ls::server {
namespace {

constexpr double kMinLogprob = -9999.0;  // vLLM writes -inf as this

double clamp_logprob(double lp) { return std::isfinite(lp) ? lp : kMinLogprob; }

OJson bytes_of(const std::string& s) {
  OJson out = OJson::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

int64_t prompt_tokens_of(const OpenAiRequest& r) {
  int64_t total = 0;
  for (const auto& prompt : r.prompts) total += static_cast<int64_t>(prompt.size());
  return total;
}

}  // namespace

const char* openai_finish_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort:
    case FinishReason::kError: return "abort";
    default: return "stop";
  }
}

OJson openai_stop_reason(FinishReason reason, const std::string& stop_string, int32_t stop_token) {
  if (reason == FinishReason::kStopSequence) return stop_string;
  if (reason == FinishReason::kStopToken) return stop_token;
  return OJson();
}

std::string openai_response_id(OpenAiKind kind) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string id = kind == OpenAiKind::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 2; ++i) {
    uint64_t v = rng();
    for (int j = 0; j < 16; ++j, v >>= 4) id.push_back(kHex[v & 15]);
  }
  return id;
}

int64_t unix_time_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<size_t> openai_choice_sequences(const OpenAiRequest& r, const std::vector<SequenceOutput>& outputs) {
  std::vector<size_t> chosen;
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    std::vector<size_t> seqs(static_cast<size_t>(r.best_of));
    std::iota(seqs.begin(), seqs.end(), p * static_cast<size_t>(r.best_of));
    if (r.best_of > r.n) {
      std::stable_sort(seqs.begin(), seqs.end(), [&](size_t a, size_t b) {
        return outputs[a].cumulative_logprob() > outputs[b].cumulative_logprob();
      });
    }
    chosen.insert(chosen.end(), seqs.begin(), seqs.begin() + r.n);
  }
  return chosen;
}

std::optional<ApiError> openai_job_error(const std::vector<SequenceOutput>& outputs) {
  for (const SequenceOutput& o : outputs) {
    if (o.reason != FinishReason::kError) continue;
    const Status s = o.error.is_ok() ? internal_error("the request failed") : o.error;
    return to_api_error(ApiFamily::kOpenAi, s.code() == ErrorCode::kOk ? internal_error(s.message()) : s);
  }
  return std::nullopt;
}

OJson openai_usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"completion_tokens", completion_tokens},
          {"prompt_tokens_details", OJson()}};
}

std::string LogprobWriter::token_string(int32_t id) const {
  if (r_.return_tokens_as_token_ids) return "token_id:" + std::to_string(id);
  auto text = tokenizer_.decode(std::vector<int32_t>{id}, /*skip_special_tokens=*/false);
  return text.is_ok() ? text.value() : std::string();
}

OJson LogprobWriter::completion(const std::vector<int32_t>* prompt_ids, const std::vector<TokenInfo>& prompt_tokens,
                                const std::vector<TokenInfo>& tokens, int64_t& offset) const {
  OJson text_offset = OJson::array(), token_logprobs = OJson::array(), strings = OJson::array(),
       tops = OJson::array();
  auto add = [&](int32_t id, const TokenInfo* info) {
    const std::string s = token_string(id);
    text_offset.push_back(offset);
    offset += static_cast<int64_t>(unicode::count_chars(unicode::to_valid_utf8_lossy(s)));
    strings.push_back(s);
    if (!info) {
      token_logprobs.push_back(OJson());
      tops.push_back(OJson());
      return;
    }
    token_logprobs.push_back(clamp_logprob(info->logprob));
    OJson top = OJson::object();
    for (size_t i = 0; i < info->top.size() && static_cast<int32_t>(i) < r_.logprobs; ++i)
      top[token_string(info->top[i].first)] = clamp_logprob(info->top[i].second);
    if (!top.contains(s)) top[s] = clamp_logprob(info->logprob);
    tops.push_back(std::move(top));
  };
  if (prompt_ids && !prompt_ids->empty()) {
    add((*prompt_ids)[0], nullptr);
    for (size_t i = 1; i < prompt_ids->size(); ++i)
      add((*prompt_ids)[i], i - 1 < prompt_tokens.size() ? &prompt_tokens[i - 1] : nullptr);
  }
  for (const TokenInfo& t : tokens) add(t.id, &t);
  return {{"text_offset", std::move(text_offset)},
          {"token_logprobs", std::move(token_logprobs)},
          {"tokens", std::move(strings)},
          {"top_logprobs", std::move(tops)}};
}

OJson LogprobWriter::chat(const std::vector<TokenInfo>& tokens) const {
  OJson content = OJson::array();
  for (const TokenInfo& t : tokens) {
    const std::string s = token_string(t.id);
    OJson top = OJson::array();
    for (size_t i = 0; i < t.top.size() && static_cast<int32_t>(i) < r_.logprobs; ++i) {
      const std::string ts = token_string(t.top[i].first);
      top.push_back({{"token", ts}, {"logprob", clamp_logprob(t.top[i].second)}, {"bytes", bytes_of(ts)}});
    }
    content.push_back({{"token", s}, {"logprob", clamp_logprob(t.logprob)}, {"bytes", bytes_of(s)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}};
}

OJson completion_response(const OpenAiRequest& r, const std::vector<SequenceOutput>& outputs,
                          const Tokenizer& tokenizer, const std::string& id, int64_t created) {
  const LogprobWriter writer(r, tokenizer);
  OJson choices = OJson::array();
  int64_t completion_tokens = 0;
  const std::vector<size_t> chosen = openai_choice_sequences(r, outputs);
  for (size_t c = 0; c < chosen.size(); ++c) {
    const SequenceOutput& o = outputs[chosen[c]];
    const size_t prompt = chosen[c] / static_cast<size_t>(r.best_of);
    OJson logprobs;
    if (r.logprobs >= 0) {
      int64_t offset = 0;
      logprobs = writer.completion(r.echo ? &r.prompts[prompt] : nullptr, o.prompt_tokens, o.tokens, offset);
    }
    OJson prompt_logprobs;
    if (r.params.prompt_logprobs >= 0) {
      prompt_logprobs = OJson::array({OJson()});
      for (const TokenInfo& t : o.prompt_tokens) {
        OJson entry = OJson::object();
        entry[std::to_string(t.id)] = {{"logprob", clamp_logprob(t.logprob)}, {"rank", OJson()},
                                       {"decoded_token", writer.token_string(t.id)}};
        for (size_t i = 0; i < t.top.size() && static_cast<int32_t>(i) < r.params.prompt_logprobs; ++i) {
          const std::string key = std::to_string(t.top[i].first);
          if (key == std::to_string(t.id)) entry[key]["rank"] = static_cast<int64_t>(i + 1);
          else entry[key] = {{"logprob", clamp_logprob(t.top[i].second)}, {"rank", static_cast<int64_t>(i + 1)},
                             {"decoded_token", writer.token_string(t.top[i].first)}};
        }
        prompt_logprobs.push_back(std::move(entry));
      }
    }
    choices.push_back({{"index", c},
                       {"text", r.echo_texts[prompt] + o.text},
                       {"logprobs", std::move(logprobs)},
                       {"finish_reason", openai_finish_reason(o.reason)},
                       {"stop_reason", openai_stop_reason(o.reason, o.stop_string, o.stop_token)},
                       {"prompt_logprobs", std::move(prompt_logprobs)}});
    completion_tokens += o.generated;
  }
  return {{"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", r.model_name},
          {"choices", std::move(choices)},
          {"service_tier", OJson()},
          {"system_fingerprint", OJson()},
          {"usage", openai_usage(prompt_tokens_of(r), completion_tokens)},
          {"kv_transfer_params", OJson()}};
}

OJson chat_response(const OpenAiRequest& r, const std::vector<SequenceOutput>& outputs, const Tokenizer& tokenizer,
                    const std::string& id, int64_t created) {
  const LogprobWriter writer(r, tokenizer);
  OJson choices = OJson::array();
  int64_t completion_tokens = 0;
  const std::vector<size_t> chosen = openai_choice_sequences(r, outputs);
  for (size_t c = 0; c < chosen.size(); ++c) {
    const SequenceOutput& o = outputs[chosen[c]];
    OJson message = {{"role", "assistant"},
                     {"content", r.echo_texts[0] + o.text},
                     {"refusal", OJson()},
                     {"annotations", OJson()},
                     {"audio", OJson()},
                     {"function_call", OJson()},
                     {"tool_calls", OJson::array()},
                     {"reasoning_content", OJson()}};
    choices.push_back({{"index", c},
                       {"message", std::move(message)},
                       {"logprobs", r.logprobs >= 0 ? writer.chat(o.tokens) : OJson()},
                       {"finish_reason", openai_finish_reason(o.reason)},
                       {"stop_reason", openai_stop_reason(o.reason, o.stop_string, o.stop_token)}});
    completion_tokens += o.generated;
  }
  return {{"id", id},
          {"object", "chat.completion"},
          {"created", created},
          {"model", r.model_name},
          {"choices", std::move(choices)},
          {"service_tier", OJson()},
          {"system_fingerprint", OJson()},
          {"usage", openai_usage(prompt_tokens_of(r), completion_tokens)},
          {"prompt_logprobs", OJson()},
          {"kv_transfer_params", OJson()}};
}

}  // namespace ls::server
