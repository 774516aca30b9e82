// tgi_request.cpp: TGI/LoRAX request validation, in TGI's order and with its messages.
#include "server/tgi_request.h"

#include <algorithm>

namespace ls::server {
namespace {

// The sampling half of `parameters`: temperature, top_k, top_p, typical_p, penalties, do_sample.
Status parse_sampling(const Fields& p, bool parameters_present, TgiRequest& r) {
  LS_ASSIGN_OR_RETURN(auto temperature, p.float32("temperature"));
  LS_ASSIGN_OR_RETURN(auto repetition, p.float32("repetition_penalty"));
  LS_ASSIGN_OR_RETURN(auto frequency, p.float32("frequency_penalty"));
  LS_ASSIGN_OR_RETURN(auto presence, p.float32("presence_penalty"));
  LS_ASSIGN_OR_RETURN(auto top_k, p.integer("top_k"));
  LS_ASSIGN_OR_RETURN(auto top_p, p.float32("top_p"));
  LS_ASSIGN_OR_RETURN(auto typical_p, p.float32("typical_p"));
  LS_ASSIGN_OR_RETURN(auto do_sample, p.boolean("do_sample"));
  if (temperature && *temperature < 0) return invalid_argument("`temperature` must be non-negative");
  if (repetition && !positive_as_float32(*repetition)) return invalid_argument("`repetition_penalty` must be strictly positive");
  if (frequency && (*frequency < -2 || *frequency > 2))
    return invalid_argument("`frequency_penalty` must be >= -2.0 and <= 2.0");
  if (presence && (*presence < -2 || *presence > 2))
    return invalid_argument("`presence_penalty` must be >= -2.0 and <= 2.0");
  if (top_p && (!positive_as_float32(*top_p) || *top_p > 1)) return invalid_argument("`top_p` must be > 0.0 and <= 1.0");
  if (typical_p && (!positive_as_float32(*typical_p) || *typical_p > 1))
    return invalid_argument("`typical_p` must be > 0.0 and <= 1.0");
  if (top_k && (*top_k <= 0 || *top_k > INT32_MAX)) return invalid_argument("`top_k` must be strictly positive");

  // TGI: a missing `parameters` object samples; a present one samples only when asked, or when any warper
  // is set (tokens.py has_warpers). LoRAX: temperature 0 is greedy whatever else is set.
  const double temp = temperature.value_or(1.0);
  const bool warpers = temp != 1.0 || top_k.has_value() || top_p.value_or(1.0) < 1.0 ||
                       typical_p.value_or(1.0) < 1.0;
  r.sampling = (do_sample.value_or(!parameters_present) || warpers) && temp > 0;
  SamplingParams& s = r.params.sampling;
  s.temperature = r.sampling ? static_cast<float>(temp) : 0.0f;
  if (r.sampling) {
    s.top_k = static_cast<int32_t>(top_k.value_or(0));
    s.top_p = static_cast<float>(top_p.value_or(1.0));
    s.typical_p = static_cast<float>(typical_p.value_or(1.0));
  }
  r.params.penalties.repetition = static_cast<float>(repetition.value_or(1.0));
  r.params.penalties.frequency = static_cast<float>(frequency.value_or(0.0));
  r.params.penalties.presence = static_cast<float>(presence.value_or(0.0));
  return Status::ok();
}

// Parameters TGI/LoRAX define that this server refuses, each with a message saying why.
Status refuse_unsupported(const Fields& p) {
  LS_ASSIGN_OR_RETURN(auto watermark, p.boolean("watermark"));
  if (watermark.value_or(false))
    return unsupported("`watermark` is not supported: this server does not implement watermarking; "
                       "send false or leave it out");
  if (p.get("grammar")) return unsupported("grammar is not supported");
  LS_ASSIGN_OR_RETURN(const OJson* format, p.object("response_format"));
  if (format) {
    const std::string type = format->contains("type") && (*format)["type"].is_string()
                                 ? (*format)["type"].get<std::string>() : std::string();
    if (type != "text" && type != "Text")
      return unsupported("`response_format` of type \"" + type +
                         "\" is not supported: structured output (guided decoding) is not implemented");
  }
  if (p.get("merged_adapters")) {
    if (p.get("adapter_id")) return invalid_argument("at most one of `adapter_id` or `adapters` may be provided");
    return unsupported("`merged_adapters` is not supported: adapter merging is not implemented");
  }
  LS_ASSIGN_OR_RETURN(auto api_token, p.string("api_token"));  // accepted (only registered adapters resolve)
  LS_ASSIGN_OR_RETURN(auto apply_chat_template, p.boolean("apply_chat_template"));  // LoRAX: accepted, unused
  (void)api_token;
  (void)apply_chat_template;
  return Status::ok();
}

// Tokenizes inputs, applies `truncate` and checks the TGI length limits; fills prompt and max_new_tokens.
Status tokenize_and_check_lengths(const Fields& p, const ApiModel& model, TgiRequest& r) {
  LS_ASSIGN_OR_RETURN(auto truncate, p.integer("truncate"));
  LS_ASSIGN_OR_RETURN(auto max_new, p.integer("max_new_tokens"));
  const ApiLimits& lim = model.limits;
  if (truncate && (*truncate <= 0 || *truncate > lim.max_input_tokens))
    return invalid_argument("`truncate` must be strictly positive and less than " +
                            std::to_string(lim.max_input_tokens) + ". Given: " + std::to_string(*truncate));
  if (max_new && *max_new <= 0) return invalid_argument("`max_new_tokens` must be strictly positive");
  auto ids = model.tokenizer().encode(r.inputs, true);
  if (!ids.is_ok()) return invalid_argument("tokenizer error " + ids.status().message());
  r.prompt = std::move(ids).value();
  if (truncate && static_cast<int64_t>(r.prompt.size()) > *truncate)
    r.prompt.erase(r.prompt.begin(), r.prompt.end() - *truncate);
  if (r.prompt.empty()) return invalid_argument("`inputs` tokenizes to no tokens");
  const int64_t input_length = static_cast<int64_t>(r.prompt.size());
  if (input_length > lim.max_input_tokens)
    return invalid_argument("`inputs` must have less than " + std::to_string(lim.max_input_tokens) +
                            " tokens. Given: " + std::to_string(input_length));
  const int64_t new_tokens = max_new.value_or(lim.max_total_tokens - input_length);
  if (input_length + new_tokens > lim.max_total_tokens)
    return invalid_argument("`inputs` tokens + `max_new_tokens` must be <= " + std::to_string(lim.max_total_tokens) +
                            ". Given: " + std::to_string(input_length) + " `inputs` tokens and " +
                            std::to_string(new_tokens) + " `max_new_tokens`");
  r.params.stop.max_new_tokens = static_cast<int32_t>(new_tokens);
  return Status::ok();
}

Status parse_outputs(const Fields& p, const ApiModel& model, TgiRequest& r) {
  const ApiLimits& lim = model.limits;
  LS_ASSIGN_OR_RETURN(auto best_of, p.integer("best_of"));
  LS_ASSIGN_OR_RETURN(auto seed, p.seed("seed"));
  LS_ASSIGN_OR_RETURN(auto top_n, p.integer("top_n_tokens"));
  LS_ASSIGN_OR_RETURN(auto alternatives, p.integer("return_k_alternatives"));
  LS_ASSIGN_OR_RETURN(auto details, p.boolean("details"));
  LS_ASSIGN_OR_RETURN(auto decoder_input_details, p.boolean("decoder_input_details"));
  LS_ASSIGN_OR_RETURN(auto return_full_text, p.boolean("return_full_text"));
  LS_ASSIGN_OR_RETURN(auto stop, p.strings("stop", /*allow_single=*/false));
  LS_ASSIGN_OR_RETURN(auto ignore_eos, p.boolean("ignore_eos_token"));

  if (best_of && (*best_of <= 0 || *best_of > lim.max_best_of))
    return invalid_argument("`best_of` must be > 0 and <= " + std::to_string(lim.max_best_of) +
                            ". Given: " + std::to_string(*best_of));
  r.best_of = static_cast<int32_t>(best_of.value_or(1));
  if (r.best_of > 1) {
    if (!r.sampling) return invalid_argument("you must use sampling when `best_of` is > 1");
    if (seed) return invalid_argument("`seed` must not be set when `best_of` > 1");
    if (r.stream) return invalid_argument("`best_of` != 1 is not supported when streaming tokens");
  }
  if (top_n && (*top_n < 0 || *top_n > lim.max_top_n_tokens))
    return invalid_argument("`top_n_tokens` must be >= 0 and <= " + std::to_string(lim.max_top_n_tokens) +
                            ". Given: " + std::to_string(*top_n));
  if (alternatives && *alternatives <= 0) return invalid_argument("`return_k_alternatives` must be strictly positive");
  if (alternatives && *alternatives > lim.max_top_n_tokens)
    return invalid_argument("`return_k_alternatives` must be <= " + std::to_string(lim.max_top_n_tokens) +
                            ". Given: " + std::to_string(*alternatives));
  r.top_n_tokens = static_cast<int32_t>(top_n.value_or(0));
  r.alternatives = static_cast<int32_t>(alternatives.value_or(0));
  r.decoder_input_details = decoder_input_details.value_or(false);
  if (r.decoder_input_details && r.stream)
    return invalid_argument("`decoder_input_details` == true is not supported when streaming tokens");
  r.details = details.value_or(false) || r.decoder_input_details;
  r.return_full_text = return_full_text.value_or(false);
  if (stop) {
    if (static_cast<int64_t>(stop->size()) > lim.max_stop_sequences)
      return invalid_argument("`stop` supports up to " + std::to_string(lim.max_stop_sequences) +
                              " stop sequences. Given: " + std::to_string(stop->size()));
    for (const std::string& s : *stop)
      if (s.empty()) return invalid_argument("`stop` sequences must not be empty strings");
    r.params.stop.stop_strings = std::move(*stop);
  }
  // TGI keeps a matched stop sequence in generated_text.
  r.params.stop.include_stop_str_in_output = true;
  r.params.stop.ignore_eos = ignore_eos.value_or(false);
  if (seed) r.params.seed = *seed;
  // Token logprobs are part of every TGI token object (streams, details, the best_of ranking).
  const int32_t top = std::max(r.top_n_tokens, r.alternatives);
  r.params.logprobs = (r.details || r.stream || r.best_of > 1 || top > 0) ? top : -1;
  r.params.prompt_logprobs = r.decoder_input_details ? 0 : -1;
  r.params.skip_special_tokens = true;
  return Status::ok();
}

}  // namespace

Result<std::string> tgi_inputs(const OJson& body) {
  const Fields f(body);
  if (!f.get("inputs")) return invalid_argument("missing field `inputs`");
  LS_ASSIGN_OR_RETURN(std::optional<std::string> inputs, f.string("inputs"));
  return inputs.value_or(std::string());
}

Result<TgiRequest> parse_tgi_request(const OJson& body, const ApiModel& model, bool stream) {
  TgiRequest r;
  r.stream = stream;
  LS_ASSIGN_OR_RETURN(r.inputs, tgi_inputs(body));
  if (r.inputs.empty()) return invalid_argument("`inputs` cannot be empty");
  const Fields top(body);
  LS_ASSIGN_OR_RETURN(const OJson* params_json, top.object("parameters"));
  static const OJson kEmpty = OJson::object();
  const Fields p(params_json ? *params_json : kEmpty, "parameters.");
  LS_RETURN_IF_ERROR(parse_sampling(p, params_json != nullptr, r));
  LS_RETURN_IF_ERROR(refuse_unsupported(p));
  LS_ASSIGN_OR_RETURN(r.adapter_id, p.string("adapter_id"));
  LS_ASSIGN_OR_RETURN(r.adapter_source, p.string("adapter_source"));
  LS_RETURN_IF_ERROR(parse_outputs(p, model, r));
  LS_ASSIGN_OR_RETURN(r.adapter, model.resolve_adapter_id(r.adapter_id, r.adapter_source));
  LS_RETURN_IF_ERROR(tokenize_and_check_lengths(p, model, r));
  return r;
}

std::vector<EngineRequest> tgi_engine_requests(const TgiRequest& r) {
  std::vector<EngineRequest> out;
  for (int32_t i = 0; i < r.best_of; ++i) {
    EngineRequest e;
    e.prompt = r.prompt;
    e.adapter = r.adapter.name;
    e.adapter_source = r.adapter.source;
    e.params = r.params;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ls::server
