// tgi_response.cpp: TGI/LoRAX bodies, events and headers.
#include "server/tgi_response.h"

#include <cstdio>
#include <limits>

#include "core/utf8.h"

namespace ls::server {
namespace {

std::string single_token_text(const Tokenizer& tokenizer, int32_t id) {
  auto text = tokenizer.decode(std::vector<int32_t>{id}, /*skip_special_tokens=*/false);
  return text.is_ok() ? text.value() : std::string();
}

OJson seed_json(const TgiRequest& r, const SequenceOutput& o) { return r.sampling ? OJson(o.seed) : OJson(); }

OJson prefill_json(const TgiRequest& r, const SequenceOutput& o, const Tokenizer& tokenizer) {
  OJson prefill = OJson::array();
  if (!r.decoder_input_details || r.prompt.empty()) return prefill;
  prefill.push_back({{"id", r.prompt[0]}, {"text", single_token_text(tokenizer, r.prompt[0])}, {"logprob", OJson()}});
  for (const TokenInfo& t : o.prompt_tokens)
    prefill.push_back({{"id", t.id}, {"text", single_token_text(tokenizer, t.id)}, {"logprob", t.logprob}});
  return prefill;
}

OJson tokens_json(const TgiRequest& r, const SequenceOutput& o, const Tokenizer& tokenizer) {
  OJson tokens = OJson::array();
  for (const TokenInfo& t : o.tokens) tokens.push_back(tgi_token(t, r, tokenizer));
  return tokens;
}

// The fields a Details object and a BestOfSequence share, in TGI's order.
void add_sequence_fields(OJson& obj, const TgiRequest& r, const SequenceOutput& o, const Tokenizer& tokenizer) {
  obj["finish_reason"] = tgi_finish_reason(o.reason);
  obj["generated_tokens"] = o.generated;
  obj["seed"] = seed_json(r, o);
  obj["prefill"] = prefill_json(r, o, tokenizer);
  obj["tokens"] = tokens_json(r, o, tokenizer);
  if (r.top_n_tokens > 0) {
    OJson top = OJson::array();
    for (const TokenInfo& t : o.tokens) top.push_back(tgi_top_tokens(t, r, tokenizer));
    obj["top_tokens"] = std::move(top);
  }
}

std::string full_text(const TgiRequest& r, const std::string& generated) {
  return r.return_full_text ? r.inputs + generated : generated;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

}  // namespace

const char* tgi_finish_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
    case FinishReason::kStopToken: return "eos_token";
    case FinishReason::kStopSequence: return "stop_sequence";
    default: return "length";
  }
}

OJson tgi_token(const TokenInfo& t, const TgiRequest& r, const Tokenizer& tokenizer) {
  const bool special = tokenizer.is_special_id(t.id);
  OJson token = {{"id", t.id},
                 {"text", special ? single_token_text(tokenizer, t.id) : t.text},
                 {"logprob", r.params.logprobs >= 0 ? OJson(t.logprob) : OJson()},
                 {"special", special},
                 {"skipped", false}};
  if (r.alternatives > 0) {
    OJson alternatives = OJson::array();
    for (size_t i = 0; i < t.top.size() && static_cast<int32_t>(i) < r.alternatives; ++i)
      alternatives.push_back({{"id", t.top[i].first},
                              {"text", single_token_text(tokenizer, t.top[i].first)},
                              {"logprob", t.top[i].second}});
    token["alternative_tokens"] = std::move(alternatives);
  }
  return token;
}

OJson tgi_top_tokens(const TokenInfo& t, const TgiRequest& r, const Tokenizer& tokenizer) {
  OJson top = OJson::array();
  for (size_t i = 0; i < t.top.size() && static_cast<int32_t>(i) < r.top_n_tokens; ++i) {
    const int32_t id = t.top[i].first;
    top.push_back({{"id", id},
                   {"text", single_token_text(tokenizer, id)},
                   {"logprob", t.top[i].second},
                   {"special", tokenizer.is_special_id(id)}});
  }
  return top;
}

size_t tgi_best_sequence(const std::vector<SequenceOutput>& outputs) {
  size_t best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < outputs.size(); ++i) {
    const double score = outputs[i].cumulative_logprob();
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

std::optional<ApiError> tgi_job_error(const std::vector<SequenceOutput>& outputs) {
  for (const SequenceOutput& o : outputs) {
    if (o.reason == FinishReason::kError) {
      const Status s = o.error.is_ok() ? internal_error("the request failed") : o.error;
      if (s.code() == ErrorCode::kInternal || s.code() == ErrorCode::kUnavailable ||
          s.code() == ErrorCode::kFailedDependency)
        return ApiError{424, "generation", "Request failed during generation: " + s.message(), ""};
      return to_api_error(ApiFamily::kTgi, s);
    }
    if (o.reason == FinishReason::kAbort || !o.finished)
      return ApiError{500, "incomplete_generation", "Incomplete generation", ""};
  }
  return std::nullopt;
}

OJson tgi_generate_response(const TgiRequest& r, const std::vector<SequenceOutput>& outputs,
                            const Tokenizer& tokenizer) {
  const size_t best = tgi_best_sequence(outputs);
  const SequenceOutput& o = outputs[best];
  OJson response = {{"generated_text", full_text(r, o.text)}};
  if (!r.details) return response;
  OJson details = OJson::object();
  add_sequence_fields(details, r, o, tokenizer);
  if (r.best_of > 1) {
    OJson others = OJson::array();
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (i == best) continue;
      OJson seq = {{"generated_text", full_text(r, outputs[i].text)}};
      add_sequence_fields(seq, r, outputs[i], tokenizer);
      others.push_back(std::move(seq));
    }
    details["best_of_sequences"] = std::move(others);
  }
  details["prompt_tokens"] = o.prompt_len;
  details["skipped_tokens"] = 0;
  response["details"] = std::move(details);
  return response;
}

std::vector<std::pair<std::string, std::string>> tgi_headers(const TgiRequest& r, const ApiModel& model,
                                                             const SequenceOutput* o, double request_start,
                                                             double submitted) {
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back("x-compute-type", model.compute_type);
  h.emplace_back("x-compute-characters", std::to_string(unicode::count_chars(unicode::to_valid_utf8_lossy(r.inputs))));
  if (o) {
    const double now = engine_clock_seconds();
    const RequestTimes& t = o->times;
    const double inference = t.finished > t.scheduled && t.scheduled > 0 ? t.finished - t.scheduled : 0;
    const double queue = t.scheduled > t.arrival && t.arrival > 0 ? t.scheduled - t.arrival : 0;
    h.emplace_back("x-compute-time", fmt(inference));
    h.emplace_back("x-total-time", std::to_string(static_cast<int64_t>((now - request_start) * 1000)));
    h.emplace_back("x-validation-time", std::to_string(static_cast<int64_t>((submitted - request_start) * 1000)));
    h.emplace_back("x-queue-time", std::to_string(static_cast<int64_t>(queue * 1000)));
    h.emplace_back("x-inference-time", std::to_string(static_cast<int64_t>(inference * 1000)));
    h.emplace_back("x-time-per-token",
                   std::to_string(static_cast<int64_t>(o->generated > 0 ? inference * 1000 / o->generated : 0)));
    h.emplace_back("x-prompt-tokens", std::to_string(o->prompt_len));
    h.emplace_back("x-generated-tokens", std::to_string(o->generated));
  }
  if (!r.adapter.name.empty()) {
    h.emplace_back("x-adapter-id", r.adapter_id.value_or(r.adapter.name));
    h.emplace_back("x-adapter-source", r.adapter_source.value_or("hub"));
  }
  h.emplace_back("x-model-id", model.id());
  return h;
}

void TgiStreamRenderer::render(const RequestUpdate& u, std::string& out) {
  for (size_t k = 0; k < u.tokens.size(); ++k) {
    const TokenInfo& t = u.tokens[k];
    const bool last = u.finished && k + 1 == u.tokens.size() && u.reason != FinishReason::kError &&
                      u.reason != FinishReason::kAbort;
    OJson event = {{"index", ++index_}, {"token", tgi_token(t, r_, tokenizer_)}};
    if (r_.top_n_tokens > 0) event["top_tokens"] = tgi_top_tokens(t, r_, tokenizer_);
    last_ = t;
    if (!last) {
      event["generated_text"] = OJson();
      event["details"] = OJson();
      out += tgi_event(event);
    }
  }
  text_ += u.text;
  if (!u.finished) return;
  if (u.reason == FinishReason::kError || u.reason == FinishReason::kAbort) {
    OJson error;
    if (u.reason == FinishReason::kAbort) {
      error = {{"error", "Incomplete generation stream"}, {"error_type", "incomplete_generation_stream"}};
    } else {
      error = {{"error", "Request failed during generation: " + u.error.message()}, {"error_type", "generation"}};
    }
    out += tgi_event(error);
    return;
  }
  // The final event: the last token (re-sent empty if the finishing update brought no new token).
  TokenInfo final_token = u.tokens.empty() ? last_.value_or(TokenInfo{}) : u.tokens.back();
  if (u.tokens.empty()) final_token.text.clear();
  OJson event = {{"index", u.tokens.empty() ? ++index_ : index_}, {"token", tgi_token(final_token, r_, tokenizer_)}};
  if (r_.top_n_tokens > 0) event["top_tokens"] = tgi_top_tokens(final_token, r_, tokenizer_);
  event["generated_text"] = full_text(r_, text_);
  if (r_.details) {
    event["details"] = {{"finish_reason", tgi_finish_reason(u.reason)},
                        {"generated_tokens", u.generated},
                        {"seed", r_.sampling ? OJson(u.seed) : OJson()},
                        {"input_length", u.prompt_len},
                        {"prompt_tokens", u.prompt_len}};
  } else {
    event["details"] = OJson();
  }
  out += tgi_event(event);
}

}  // namespace ls::server
