// openai_request.cpp: vLLM's validation of the OpenAI routes (the fields both share) and /v1/completions.
#include "server/openai_request.h"

#include <algorithm>
#include <charconv>

namespace ls::server {
namespace {

// A float as Python's repr prints it ("1.0", "-0.5", "1e-05"), for vLLM's messages.
std::string py_float(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// Structured-output and tool features this server does not implement.
Status refuse_unsupported(const Fields& f) {
  LS_ASSIGN_OR_RETURN(const OJson* format, f.object("response_format"));
  if (format) {
    const OJson* type = Fields(*format, "response_format.").get("type");
    if (!type || !type->is_string()) return invalid_argument("`response_format.type` must be a string");
    const std::string t = type->get<std::string>();
    if (t == "json_object" || t == "json_schema" || t == "structural_tag")
      return unsupported("response_format type \"" + t +
                         "\" is not supported: structured output (guided decoding) is not implemented by this "
                         "server; use type \"text\"");
    if (t != "text") return invalid_argument("`response_format.type` must be one of \"text\", \"json_object\", "
                                             "\"json_schema\", got \"" + t + "\"");
  }
  for (const char* key : {"guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs",
                          "guided_decoding_backend"}) {
    if (f.get(key))
      return unsupported(std::string("`") + key + "` is not supported: guided decoding is not implemented by this "
                         "server");
  }
  if (const OJson* bias = f.get("logit_bias")) {
    if (!bias->is_object() || !bias->empty()) return unsupported("`logit_bias` is not supported by this server");
  }
  LS_ASSIGN_OR_RETURN(auto beam, f.boolean("use_beam_search"));
  if (beam.value_or(false)) return unsupported("`use_beam_search` is not supported: beam search is not implemented");
  if (f.get("prompt_embeds")) return unsupported("`prompt_embeds` is not supported by this server");
  if (f.get("allowed_token_ids")) return unsupported("`allowed_token_ids` is not supported by this server");
  return Status::ok();
}

Status parse_stop(const Fields& f, const ApiModel& model, OpenAiRequest& r) {
  LS_ASSIGN_OR_RETURN(auto stop, f.strings("stop", /*allow_single=*/true));
  const int32_t max_stop = model.limits.max_stop_sequences * 4;
  if (stop) {
    if (static_cast<int32_t>(stop->size()) > max_stop)
      return invalid_argument("`stop` supports up to " + std::to_string(max_stop) + " sequences, got " +
                              std::to_string(stop->size()) + ".");
    for (const std::string& s : *stop)
      if (s.empty()) return invalid_argument("`stop` sequences must not be empty strings.");
    r.params.stop.stop_strings = std::move(*stop);
  }
  LS_ASSIGN_OR_RETURN(auto stop_ids, f.integers("stop_token_ids"));
  if (stop_ids) {
    const int64_t vocab = static_cast<int64_t>(model.tokenizer().vocab_size());
    for (int64_t id : *stop_ids) {
      if (id < 0 || id >= vocab) return invalid_argument("`stop_token_ids`: token id " + std::to_string(id) +
                                                         " is out of vocabulary");
      r.params.stop.stop_token_ids.push_back(static_cast<int32_t>(id));
    }
  }
  LS_ASSIGN_OR_RETURN(auto include_stop, f.boolean("include_stop_str_in_output"));
  LS_ASSIGN_OR_RETURN(auto ignore_eos, f.boolean("ignore_eos"));
  LS_ASSIGN_OR_RETURN(auto ignore_eos_token, f.boolean("ignore_eos_token"));  // LoRAX's spelling
  LS_ASSIGN_OR_RETURN(auto skip_special, f.boolean("skip_special_tokens"));
  r.params.stop.include_stop_str_in_output = include_stop.value_or(false);
  r.params.stop.ignore_eos = ignore_eos.value_or(false) || ignore_eos_token.value_or(false);
  r.params.skip_special_tokens = skip_special.value_or(true);
  return Status::ok();
}

}  // namespace

Status parse_openai_sampling(const Fields& f, const ApiModel& model, OpenAiRequest& r) {
  const GenerationDefaults& d = model.defaults;
  LS_ASSIGN_OR_RETURN(auto temperature, f.float32("temperature"));
  LS_ASSIGN_OR_RETURN(auto top_p, f.float32("top_p"));
  LS_ASSIGN_OR_RETURN(auto top_k, f.integer("top_k"));
  LS_ASSIGN_OR_RETURN(auto min_p, f.float32("min_p"));
  LS_ASSIGN_OR_RETURN(auto typical_p, f.float32("typical_p"));
  LS_ASSIGN_OR_RETURN(auto repetition, f.float32("repetition_penalty"));
  LS_ASSIGN_OR_RETURN(auto frequency, f.float32("frequency_penalty"));
  LS_ASSIGN_OR_RETURN(auto presence, f.float32("presence_penalty"));
  const double t = temperature ? *temperature : d.temperature.value_or(1.0);
  const double p = top_p ? *top_p : d.top_p.value_or(1.0);
  const int64_t k = top_k ? *top_k : d.top_k.value_or(0);
  const double mp = min_p ? *min_p : d.min_p.value_or(0.0);
  const double rep = repetition ? *repetition : d.repetition_penalty.value_or(1.0);
  if (t < 0) return invalid_argument("temperature must be non-negative, got " + py_float(t) + ".");
  if (!positive_as_float32(p) || p > 1) return invalid_argument("top_p must be in (0, 1], got " + py_float(p) + ".");
  if (k < -1 || k > INT32_MAX)
    return invalid_argument("top_k must be 0 or -1 (disable), or at least 1, got " + std::to_string(k) + ".");
  if (mp < 0 || mp > 1) return invalid_argument("min_p must be in [0, 1], got " + py_float(mp) + ".");
  if (typical_p && (!positive_as_float32(*typical_p) || *typical_p > 1))
    return invalid_argument("typical_p must be in (0, 1], got " + py_float(*typical_p) + ".");
  if (!positive_as_float32(rep)) return invalid_argument("repetition_penalty must be greater than zero, got " + py_float(rep) + ".");
  if (frequency && (*frequency < -2 || *frequency > 2))
    return invalid_argument("frequency_penalty must be in [-2, 2], got " + py_float(*frequency) + ".");
  if (presence && (*presence < -2 || *presence > 2))
    return invalid_argument("presence_penalty must be in [-2, 2], got " + py_float(*presence) + ".");
  SamplingParams& s = r.params.sampling;
  s.temperature = t < 1e-5 ? 0.0f : static_cast<float>(t);  // vLLM: a temperature this small is greedy
  s.top_p = static_cast<float>(p);
  s.top_k = k <= 0 ? 0 : static_cast<int32_t>(k);
  s.min_p = static_cast<float>(mp);
  s.typical_p = static_cast<float>(typical_p.value_or(1.0));
  r.params.penalties.repetition = static_cast<float>(rep);
  r.params.penalties.frequency = static_cast<float>(frequency.value_or(0.0));
  r.params.penalties.presence = static_cast<float>(presence.value_or(0.0));
  return Status::ok();
}

Status parse_openai_common(const Fields& f, const ApiModel& model, OpenAiRequest& r) {
  LS_ASSIGN_OR_RETURN(r.model_requested, f.string("model"));
  LS_RETURN_IF_ERROR(refuse_unsupported(f));
  LS_ASSIGN_OR_RETURN(auto stream, f.boolean("stream"));
  r.stream = stream.value_or(false);
  LS_ASSIGN_OR_RETURN(const OJson* stream_options, f.object("stream_options"));
  if (stream_options) {
    if (!r.stream) return invalid_argument("Stream options can only be defined when `stream=True`.");
    const Fields so(*stream_options, "stream_options.");
    LS_ASSIGN_OR_RETURN(auto include_usage, so.boolean("include_usage"));
    LS_ASSIGN_OR_RETURN(auto continuous, so.boolean("continuous_usage_stats"));
    r.include_usage = include_usage.value_or(true);
    r.continuous_usage = r.include_usage && continuous.value_or(false);
  }
  const int32_t max_n = model.limits.max_n;
  LS_ASSIGN_OR_RETURN(auto n, f.integer("n"));
  if (n && *n < 1) return invalid_argument("n must be at least 1, got " + std::to_string(*n) + ".");
  if (n && *n > max_n) return invalid_argument("n must be at most " + std::to_string(max_n) + ", got " +
                                               std::to_string(*n) + ".");
  r.n = static_cast<int32_t>(n.value_or(1));
  LS_ASSIGN_OR_RETURN(auto best_of, f.integer("best_of"));
  if (best_of && (*best_of < r.n || *best_of > max_n))
    return invalid_argument("best_of must be greater than or equal to n and at most " + std::to_string(max_n) +
                            ", got n=" + std::to_string(r.n) + " and best_of=" + std::to_string(*best_of) + ".");
  r.best_of = static_cast<int32_t>(best_of.value_or(r.n));
  if (r.stream && r.best_of != r.n) return invalid_argument("best_of must equal n when streaming.");
  LS_ASSIGN_OR_RETURN(auto seed, f.integer("seed"));
  if (seed) r.params.seed = static_cast<uint64_t>(*seed);
  LS_ASSIGN_OR_RETURN(auto token_ids, f.boolean("return_tokens_as_token_ids"));
  r.return_tokens_as_token_ids = token_ids.value_or(false);
  LS_ASSIGN_OR_RETURN(auto min_tokens, f.integer("min_tokens"));
  if (min_tokens && *min_tokens < 0)
    return invalid_argument("min_tokens must be greater than or equal to 0, got " + std::to_string(*min_tokens) + ".");
  r.params.stop.min_new_tokens = static_cast<int32_t>(std::min<int64_t>(min_tokens.value_or(0), INT32_MAX));
  LS_RETURN_IF_ERROR(parse_openai_sampling(f, model, r));
  LS_RETURN_IF_ERROR(parse_stop(f, model, r));
  // LoRAX's extras on its OpenAI routes: adapter_source picks where `model` is looked up.
  LS_ASSIGN_OR_RETURN(auto adapter_source, f.string("adapter_source"));
  if (adapter_source && !r.model_requested.value_or("").empty() && !model.is_base_name(*r.model_requested) &&
      *r.model_requested != "tgi") {
    auto adapter = model.resolve_adapter_id(r.model_requested, adapter_source);
    if (!adapter.is_ok()) {
      if (adapter.status().code() == ErrorCode::kNotFound)
        return not_found("The model `" + *r.model_requested + "` does not exist.");
      return adapter.status();
    }
    r.adapter = adapter->name;
    r.adapter_source = adapter->source;
  } else {
    LS_ASSIGN_OR_RETURN(r.adapter, model.resolve_model(r.model_requested));
  }
  r.model_name = model.response_model_name(r.model_requested, r.adapter);
  return Status::ok();
}

Status resolve_max_tokens(const Fields& f, const ApiModel& model, OpenAiRequest& r, int64_t prompt_len) {
  std::optional<int64_t> requested;
  if (r.kind == OpenAiKind::kChat) {
    LS_ASSIGN_OR_RETURN(auto completion_tokens, f.integer("max_completion_tokens"));
    LS_ASSIGN_OR_RETURN(auto max_tokens, f.integer("max_tokens"));
    requested = completion_tokens ? completion_tokens : max_tokens;
  } else {
    LS_ASSIGN_OR_RETURN(requested, f.integer("max_tokens"));
    if (!requested) requested = 16;
  }
  if (requested && *requested < 1)
    return invalid_argument("max_tokens must be at least 1, got " + std::to_string(*requested) + ".");
  const int64_t max_len = model.limits.max_model_len;
  if (!requested) {
    if (prompt_len >= max_len)
      return invalid_argument("This model's maximum context length is " + std::to_string(max_len) +
                              " tokens. However, you requested " + std::to_string(prompt_len) +
                              " tokens in the messages, Please reduce the length of the messages.");
    int64_t room = max_len - prompt_len;
    if (model.defaults.max_new_tokens) room = std::min<int64_t>(room, *model.defaults.max_new_tokens);
    requested = room;
  } else if (prompt_len + *requested > max_len) {
    return invalid_argument("This model's maximum context length is " + std::to_string(max_len) +
                            " tokens. However, you requested " + std::to_string(prompt_len + *requested) +
                            " tokens (" + std::to_string(prompt_len) + " in the messages, " +
                            std::to_string(*requested) +
                            " in the completion). Please reduce the length of the messages or completion.");
  }
  const int32_t max_new = static_cast<int32_t>(*requested);
  if (r.params.stop.min_new_tokens > max_new)
    return invalid_argument("min_tokens must be less than or equal to max_tokens=" + std::to_string(max_new) +
                            ", got " + std::to_string(r.params.stop.min_new_tokens) + ".");
  r.params.stop.max_new_tokens = max_new;
  return Status::ok();
}

namespace {

// `prompt`: a string, a list of strings, a list of token ids, or a list of lists of token ids.
Status parse_prompts(const Fields& f, const ApiModel& model, bool add_special, OpenAiRequest& r) {
  const OJson* prompt = f.get("prompt");
  if (!prompt) return invalid_argument("At least one of `prompt` or `prompt_embeds` must be set.");
  const Tokenizer& tokenizer = model.tokenizer();
  const int64_t vocab = static_cast<int64_t>(tokenizer.vocab_size());
  auto add_text = [&](const std::string& text) -> Status {
    auto ids = tokenizer.encode(text, add_special);
    if (!ids.is_ok()) return invalid_argument("tokenizer error: " + ids.status().message());
    r.prompts.push_back(std::move(ids).value());
    r.echo_texts.push_back(text);
    return Status::ok();
  };
  auto add_ids = [&](const OJson& list) -> Status {
    std::vector<int32_t> ids;
    for (const OJson& v : list) {
      if (!v.is_number_integer()) return invalid_argument("`prompt` token ids must be integers");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= vocab) return invalid_argument("Token id " + std::to_string(id) + " is out of vocabulary");
      ids.push_back(static_cast<int32_t>(id));
    }
    auto text = tokenizer.decode(ids, /*skip_special_tokens=*/false);
    r.echo_texts.push_back(text.is_ok() ? text.value() : std::string());
    r.prompts.push_back(std::move(ids));
    return Status::ok();
  };
  if (prompt->is_string()) return add_text(prompt->get<std::string>());
  if (!prompt->is_array())
    return invalid_argument(std::string("`prompt` must be a string, a list of strings or a list of token ids, got ") +
                            json_type_name(*prompt));
  if (prompt->empty()) return invalid_argument("`prompt` must not be an empty list");
  if (prompt->front().is_number_integer()) return add_ids(*prompt);
  if (static_cast<int32_t>(prompt->size()) > model.limits.max_prompts)
    return invalid_argument("`prompt` lists are limited to " + std::to_string(model.limits.max_prompts) +
                            " prompts, got " + std::to_string(prompt->size()));
  for (const OJson& item : *prompt) {
    if (item.is_string()) {
      LS_RETURN_IF_ERROR(add_text(item.get<std::string>()));
    } else if (item.is_array() && !item.empty()) {
      LS_RETURN_IF_ERROR(add_ids(item));
    } else {
      return invalid_argument("`prompt` must be a string, a list of strings or a list of token ids");
    }
  }
  return Status::ok();
}

}  // namespace

Result<OpenAiRequest> parse_completion_request(const OJson& body, const ApiModel& model) {
  OpenAiRequest r;
  r.kind = OpenAiKind::kCompletion;
  const Fields f(body);
  LS_RETURN_IF_ERROR(parse_openai_common(f, model, r));
  if (f.get("suffix")) return unsupported("suffix is not currently supported");
  LS_ASSIGN_OR_RETURN(auto echo, f.boolean("echo"));
  r.echo = echo.value_or(false);
  const int32_t max_lp = model.limits.max_logprobs;
  LS_ASSIGN_OR_RETURN(auto logprobs, f.integer("logprobs"));
  if (logprobs && *logprobs < 0) return invalid_argument("`logprobs` must be a positive value.");
  if (logprobs && *logprobs > max_lp)
    return invalid_argument("Requested sample logprobs of " + std::to_string(*logprobs) +
                            ", which is greater than max allowed: " + std::to_string(max_lp));
  r.logprobs = logprobs ? static_cast<int32_t>(*logprobs) : -1;
  LS_ASSIGN_OR_RETURN(auto prompt_logprobs, f.integer("prompt_logprobs"));
  if (prompt_logprobs && (*prompt_logprobs < 0 || *prompt_logprobs > max_lp))
    return invalid_argument("Requested prompt logprobs of " + std::to_string(*prompt_logprobs) +
                            ", which is greater than max allowed: " + std::to_string(max_lp));
  LS_ASSIGN_OR_RETURN(auto add_special, f.boolean("add_special_tokens"));
  LS_ASSIGN_OR_RETURN(auto truncate, f.integer("truncate_prompt_tokens"));
  if (truncate && *truncate < 1 && *truncate != -1)
    return invalid_argument("truncate_prompt_tokens must be at least 1 (or -1 for the context length), got " +
                            std::to_string(*truncate) + ".");
  LS_RETURN_IF_ERROR(parse_prompts(f, model, add_special.value_or(true), r));
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    std::vector<int32_t>& ids = r.prompts[i];
    const int64_t keep = truncate ? (*truncate == -1 ? model.limits.max_model_len : *truncate) : 0;
    if (keep > 0 && static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin(), ids.end() - keep);
    if (ids.empty()) return invalid_argument("the prompt is empty: it tokenizes to no tokens");
    LS_RETURN_IF_ERROR(resolve_max_tokens(f, model, r, static_cast<int64_t>(ids.size())));
    if (!r.echo) r.echo_texts[i].clear();
  }
  r.params.logprobs = r.logprobs >= 0 ? r.logprobs : (r.best_of > r.n ? 0 : -1);
  if (prompt_logprobs) r.params.prompt_logprobs = static_cast<int32_t>(*prompt_logprobs);
  if (r.echo && r.logprobs >= 0) r.params.prompt_logprobs = std::max(r.params.prompt_logprobs, r.logprobs);
  return r;
}

std::vector<EngineRequest> openai_engine_requests(const OpenAiRequest& r) {
  std::vector<EngineRequest> out;
  for (const std::vector<int32_t>& prompt : r.prompts) {
    for (int32_t i = 0; i < r.best_of; ++i) {
      EngineRequest e;
      e.prompt = prompt;
      e.adapter = r.adapter;
      e.adapter_source = r.adapter_source;
      e.params = r.params;
      if (r.params.seed) e.params.seed = *r.params.seed + static_cast<uint64_t>(i);
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace ls::server
