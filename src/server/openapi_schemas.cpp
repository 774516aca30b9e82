// openapi_schemas.cpp: components.schemas of the OpenAPI document: each request schema states the validation
// the parser applies (ranges are this server's limits), each response schema the fields the renderers emit.
#include "server/openapi.h"

#include <optional>

namespace ls::server {
namespace {

OJson ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }
OJson nullable(OJson schema) {
  schema["nullable"] = true;
  return schema;
}
OJson nullable_ref(const std::string& name) { return {{"allOf", OJson::array({ref(name)})}, {"nullable", true}}; }
OJson str() { return {{"type", "string"}}; }
OJson boolean() { return {{"type", "boolean"}}; }
OJson num() { return {{"type", "number"}}; }
OJson integer(std::optional<int64_t> min = std::nullopt, std::optional<int64_t> max = std::nullopt) {
  OJson s = {{"type", "integer"}};
  if (min) s["minimum"] = *min;
  if (max) s["maximum"] = *max;
  return s;
}
OJson array_of(OJson items) { return {{"type", "array"}, {"items", std::move(items)}}; }
OJson object(OJson properties, std::vector<std::string> required = {}) {
  OJson s = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) s["required"] = required;
  return s;
}
OJson range(double min, double max, bool exclusive_min = false) {
  OJson s = {{"type", "number"}, {"minimum", min}, {"maximum", max}, {"nullable", true}};
  if (exclusive_min) s["exclusiveMinimum"] = true;
  return s;
}

// A string, or one of `values` when the server knows them all.
OJson one_of_strings(const std::vector<std::string>& values) {
  if (values.empty()) return str();
  return {{"type", "string"}, {"enum", values}};
}

void add_tgi_schemas(OJson& s, const ApiLimits& l, const std::vector<std::string>& adapter_ids) {
  s["ErrorResponse"] = object({{"error", str()}, {"error_type", str()}}, {"error", "error_type"});
  s["FinishReason"] = {{"type", "string"}, {"enum", {"length", "eos_token", "stop_sequence"}}};
  s["AlternativeToken"] = object({{"id", integer(0)}, {"text", str()}, {"logprob", num()}}, {"id", "text", "logprob"});
  s["Token"] = object({{"id", integer(0)}, {"text", str()}, {"logprob", nullable(num())}, {"special", boolean()},
                       {"skipped", boolean()}, {"alternative_tokens", array_of(ref("AlternativeToken"))}},
                      {"id", "text", "logprob", "special"});
  s["PrefillToken"] = object({{"id", integer(0)}, {"text", str()}, {"logprob", nullable(num())}},
                             {"id", "text", "logprob"});
  const OJson sequence_fields = {{"finish_reason", ref("FinishReason")},
                                 {"generated_tokens", integer(0)},
                                 {"seed", nullable(integer(0))},
                                 {"prefill", array_of(ref("PrefillToken"))},
                                 {"tokens", array_of(ref("Token"))},
                                 {"top_tokens", array_of(array_of(ref("Token")))}};
  OJson best_of = sequence_fields;
  best_of["generated_text"] = str();
  s["BestOfSequence"] = object(best_of, {"generated_text", "finish_reason", "generated_tokens", "prefill", "tokens"});
  OJson details = sequence_fields;
  details["best_of_sequences"] = array_of(ref("BestOfSequence"));
  details["prompt_tokens"] = integer(0);
  details["skipped_tokens"] = integer(0);
  s["Details"] = object(details, {"finish_reason", "generated_tokens", "prefill", "tokens"});
  s["GenerateResponse"] = object({{"generated_text", str()}, {"details", ref("Details")}}, {"generated_text"});
  s["StreamDetails"] = object({{"finish_reason", ref("FinishReason")}, {"generated_tokens", integer(0)},
                               {"seed", nullable(integer(0))}, {"input_length", integer(0)},
                               {"prompt_tokens", integer(0)}},
                              {"finish_reason", "generated_tokens", "input_length"});
  s["StreamResponse"] = object({{"index", integer(0)}, {"token", ref("Token")}, {"top_tokens", array_of(ref("Token"))},
                                {"generated_text", nullable(str())}, {"details", nullable_ref("StreamDetails")}},
                               {"index", "token"});
  OJson stop = array_of({{"type", "string"}, {"minLength", 1}});
  stop["maxItems"] = l.max_stop_sequences;
  stop["nullable"] = true;
  s["GenerateParameters"] = object({
      {"adapter_id", nullable(one_of_strings(adapter_ids))},
      {"adapter_source", nullable({{"type", "string"}, {"enum", {"hub", "local", "s3"}}})},
      {"api_token", nullable(str())},
      {"best_of", nullable(integer(1, l.max_best_of))},
      {"decoder_input_details", nullable(boolean())},
      {"details", nullable(boolean())},
      {"do_sample", nullable(boolean())},
      {"frequency_penalty", range(-2, 2)},
      {"presence_penalty", range(-2, 2)},
      {"ignore_eos_token", nullable(boolean())},
      {"max_new_tokens", nullable(integer(1, l.max_total_tokens))},
      {"repetition_penalty", nullable({{"type", "number"}, {"minimum", 0}, {"exclusiveMinimum", true}})},
      {"return_full_text", nullable(boolean())},
      {"return_k_alternatives", nullable(integer(1, l.max_top_n_tokens))},
      {"seed", nullable(integer(0))},
      {"stop", stop},
      {"temperature", nullable({{"type", "number"}, {"minimum", 0}})},
      {"top_k", nullable(integer(1, INT32_MAX))},
      {"top_n_tokens", nullable(integer(0, l.max_top_n_tokens))},
      {"top_p", range(0, 1, true)},
      {"truncate", nullable(integer(1, l.max_input_tokens))},
      {"typical_p", range(0, 1, true)},
      {"watermark", nullable({{"type", "boolean"}, {"enum", {false}}})},
  });
  s["GenerateRequest"] = object({{"inputs", {{"type", "string"}, {"minLength", 1}}},
                                 {"parameters", nullable_ref("GenerateParameters")}},
                                {"inputs"});
  s["CompatGenerateRequest"] = object({{"inputs", {{"type", "string"}, {"minLength", 1}}},
                                       {"parameters", nullable_ref("GenerateParameters")},
                                       {"stream", nullable(boolean())}},
                                      {"inputs"});
  // /tokenize reads `inputs` only (TGI ignores the parameters there).
  s["TokenizeRequest"] = object({{"inputs", str()}, {"parameters", nullable({{"type", "object"}})}}, {"inputs"});
  s["SimpleToken"] = object({{"id", integer(0)}, {"text", str()}, {"start", integer(0)}, {"stop", integer(0)}},
                            {"id", "text", "start", "stop"});
  s["TokenizeResponse"] = array_of(ref("SimpleToken"));
  s["VllmTokenizeResponse"] = object({{"count", integer(0)}, {"max_model_len", integer(0)},
                                      {"tokens", array_of(integer(0))}, {"token_strs", nullable(array_of(str()))}},
                                     {"count", "max_model_len", "tokens"});
  s["ChatTokenizeResponse"] = object({{"tokenize_response", ref("TokenizeResponse")}, {"templated_text", str()}},
                                     {"tokenize_response", "templated_text"});
  s["Info"] = object({{"model_id", str()}, {"model_sha", nullable(str())}, {"model_dtype", str()},
                      {"model_device_type", str()}, {"model_pipeline_tag", nullable(str())},
                      {"max_concurrent_requests", integer(0)}, {"max_best_of", integer(0)},
                      {"max_stop_sequences", integer(0)}, {"max_input_tokens", integer(0)},
                      {"max_input_length", integer(0)}, {"max_total_tokens", integer(0)},
                      {"waiting_served_ratio", num()}, {"max_batch_total_tokens", integer(0)},
                      {"max_waiting_tokens", integer(0)}, {"max_batch_size", nullable(integer(0))},
                      {"validation_workers", integer(0)}, {"max_client_batch_size", integer(0)},
                      {"router", str()}, {"version", str()}, {"sha", nullable(str())},
                      {"docker_label", nullable(str())}, {"max_model_len", integer(0)},
                      {"adapters", array_of(str())}},
                     {"model_id", "max_concurrent_requests", "max_best_of", "max_stop_sequences", "max_input_tokens",
                      "max_total_tokens", "validation_workers", "max_client_batch_size", "router", "version"});
}

// A token id of this model.
OJson token_id(const ApiLimits& l) {
  return l.vocab_size > 0 ? integer(0, l.vocab_size - 1) : integer(0);
}

void add_openai_request_schemas(OJson& s, const ApiLimits& l, const std::vector<std::string>& model_names) {
  OJson stop_list = array_of({{"type", "string"}, {"minLength", 1}});
  stop_list["maxItems"] = l.max_stop_sequences * 4;
  const OJson stop = {{"anyOf", OJson::array({{{"type", "string"}, {"minLength", 1}}, stop_list})},
                      {"nullable", true}};
  s["StreamOptions"] = object({{"include_usage", nullable(boolean())},
                               {"continuous_usage_stats", nullable(boolean())}});
  s["ResponseFormat"] = object({{"type", {{"type", "string"}, {"enum", {"text"}}}}}, {"type"});
  const OJson common = {
      {"model", nullable(one_of_strings(model_names))},
      {"frequency_penalty", range(-2, 2)},
      {"presence_penalty", range(-2, 2)},
      {"repetition_penalty", nullable({{"type", "number"}, {"minimum", 0}, {"exclusiveMinimum", true}})},
      {"temperature", nullable({{"type", "number"}, {"minimum", 0}})},
      {"top_p", range(0, 1, true)},
      {"top_k", nullable(integer(-1, INT32_MAX))},
      {"min_p", range(0, 1)},
      {"n", nullable(integer(1, l.max_n))},
      {"seed", nullable(integer(INT64_MIN, INT64_MAX))},
      {"stop", stop},
      {"stop_token_ids", nullable(array_of(token_id(l)))},
      {"stream", nullable(boolean())},
      {"stream_options", nullable_ref("StreamOptions")},
      {"ignore_eos", nullable(boolean())},
      {"include_stop_str_in_output", nullable(boolean())},
      {"skip_special_tokens", nullable(boolean())},
      {"min_tokens", nullable(integer(0))},
      {"response_format", nullable_ref("ResponseFormat")},
  };
  OJson completion = common;
  completion["prompt"] = {{"anyOf", OJson::array({{{"type", "string"}, {"minLength", 1}},
                                                  {{"type", "array"}, {"items", str()}, {"minItems", 1},
                                                   {"maxItems", l.max_prompts}},
                                                  {{"type", "array"}, {"items", token_id(l)}, {"minItems", 1}},
                                                  {{"type", "array"},
                                                   {"items", {{"type", "array"}, {"items", token_id(l)}, {"minItems", 1}}},
                                                   {"minItems", 1},
                                                   {"maxItems", l.max_prompts}}})}};
  completion["max_tokens"] = nullable(integer(1));
  completion["best_of"] = nullable(integer(1, l.max_n));
  completion["echo"] = nullable(boolean());
  completion["logprobs"] = nullable(integer(0, l.max_logprobs));
  completion["prompt_logprobs"] = nullable(integer(0, l.max_logprobs));
  s["CompletionRequest"] = object(completion, {"prompt"});
  const OJson text_part = object({{"type", {{"type", "string"}, {"enum", {"text"}}}}, {"text", str()}}, {"type", "text"});
  s["ChatMessage"] = object({{"role", str()},
                             {"content", {{"anyOf", OJson::array({str(), array_of(text_part)})}, {"nullable", true}}}},
                            {"role"});
  OJson chat = common;
  chat["messages"] = {{"type", "array"}, {"items", ref("ChatMessage")}, {"minItems", 1}};
  chat["max_tokens"] = nullable(integer(1));
  chat["max_completion_tokens"] = nullable(integer(1));
  chat["logprobs"] = nullable(boolean());
  chat["top_logprobs"] = nullable(integer(0, l.max_logprobs));
  chat["add_generation_prompt"] = nullable(boolean());
  chat["echo"] = nullable(boolean());
  chat["chat_template_kwargs"] = nullable({{"type", "object"}});
  s["ChatCompletionRequest"] = object(chat, {"messages"});
  s["DetokenizeRequest"] = object({{"tokens", array_of(token_id(l))}}, {"tokens"});
}

void add_openai_response_schemas(OJson& s) {
  s["OpenAIError"] = object({{"error", object({{"message", str()}, {"type", str()}, {"param", nullable(str())},
                                               {"code", integer()}},
                                              {"message", "type", "param", "code"})}},
                            {"error"});
  s["Unauthorized"] = object({{"error", str()}}, {"error"});
  s["Usage"] = object({{"prompt_tokens", integer(0)}, {"total_tokens", integer(0)}, {"completion_tokens", integer(0)},
                       {"prompt_tokens_details", nullable({{"type", "object"}})}},
                      {"prompt_tokens", "total_tokens", "completion_tokens"});
  const OJson stop_reason = {{"anyOf", OJson::array({str(), integer()})}, {"nullable", true}};
  s["CompletionLogProbs"] = object({{"text_offset", array_of(integer())},
                                    {"token_logprobs", array_of(nullable(num()))},
                                    {"tokens", array_of(str())},
                                    {"top_logprobs", array_of(nullable({{"type", "object"},
                                                                        {"additionalProperties", num()}}))}});
  s["CompletionChoice"] = object({{"index", integer(0)}, {"text", str()},
                                  {"logprobs", nullable_ref("CompletionLogProbs")},
                                  {"finish_reason", nullable(str())}, {"stop_reason", stop_reason},
                                  {"prompt_logprobs", nullable({{"type", "array"}})}},
                                 {"index", "text", "finish_reason"});
  const OJson top = object({{"token", str()}, {"logprob", num()}, {"bytes", nullable(array_of(integer(0, 255)))}},
                           {"token", "logprob"});
  s["ChatLogprob"] = object({{"token", str()}, {"logprob", num()}, {"bytes", nullable(array_of(integer(0, 255)))},
                             {"top_logprobs", array_of(top)}},
                            {"token", "logprob", "top_logprobs"});
  s["ChatLogprobs"] = object({{"content", nullable(array_of(ref("ChatLogprob")))}});
  s["ChatMessageOut"] = object({{"role", str()}, {"content", nullable(str())}, {"refusal", nullable(str())},
                                {"tool_calls", array_of({{"type", "object"}})},
                                {"reasoning_content", nullable(str())}},
                               {"role"});
  s["ChatChoice"] = object({{"index", integer(0)}, {"message", ref("ChatMessageOut")},
                            {"logprobs", nullable_ref("ChatLogprobs")}, {"finish_reason", nullable(str())},
                            {"stop_reason", stop_reason}},
                           {"index", "message", "finish_reason"});
  s["Completion"] = object({{"id", str()}, {"object", {{"type", "string"}, {"enum", {"text_completion"}}}},
                            {"created", integer(0)}, {"model", str()}, {"choices", array_of(ref("CompletionChoice"))},
                            {"usage", ref("Usage")}, {"system_fingerprint", nullable(str())}},
                           {"id", "object", "created", "model", "choices", "usage"});
  s["ChatCompletion"] = object({{"id", str()}, {"object", {{"type", "string"}, {"enum", {"chat.completion"}}}},
                                {"created", integer(0)}, {"model", str()}, {"choices", array_of(ref("ChatChoice"))},
                                {"usage", ref("Usage")}, {"system_fingerprint", nullable(str())}},
                               {"id", "object", "created", "model", "choices", "usage"});
  s["StreamChunk"] = object({{"id", str()}, {"object", str()}, {"created", integer(0)}, {"model", str()},
                             {"choices", array_of({{"type", "object"}})}, {"usage", nullable_ref("Usage")}},
                            {"id", "object", "created", "model", "choices"});
  s["ModelCard"] = object({{"id", str()}, {"object", str()}, {"created", integer(0)}, {"owned_by", str()},
                           {"root", nullable(str())}, {"parent", nullable(str())},
                           {"max_model_len", nullable(integer(0))}, {"permission", array_of({{"type", "object"}})}},
                          {"id", "object", "created", "owned_by"});
  s["ModelList"] = object({{"object", str()}, {"data", array_of(ref("ModelCard"))}}, {"object", "data"});
  s["Version"] = object({{"version", str()}}, {"version"});
  s["LoadLoraAdapterRequest"] = object({{"lora_name", {{"type", "string"}, {"minLength", 1}}},
                                        {"lora_path", {{"type", "string"}, {"minLength", 1}}},
                                        {"load_inplace", nullable(boolean())},
                                        {"base_model_name", nullable(str())}},
                                       {"lora_name", "lora_path"});
  s["AdapterCard"] = object({{"name", str()}, {"source", str()}, {"path", str()}, {"base_model_name", str()},
                             {"content_hash", str()}, {"rank", integer(0)}, {"target_modules", array_of(str())},
                             {"bytes", integer(0)}, {"tier", str()}, {"registered", boolean()}, {"last_used", num()},
                             {"requests", integer(0)}},
                            {"name", "source", "tier", "registered", "requests"});
  s["AdapterList"] = object({{"object", str()}, {"data", array_of(ref("AdapterCard"))}}, {"object", "data"});
  s["UnloadLoraAdapterRequest"] = object({{"lora_name", {{"type", "string"}, {"minLength", 1}}}}, {"lora_name"});
  s["Capacity"] = object({{"rank", integer(1)}, {"adapter_bytes", integer(0)}, {"host_adapters_free", integer(-1)},
                          {"host_bytes_used", integer(0)}, {"host_bytes_limit", integer(0)},
                          {"device_slots", integer(0)}, {"device_slots_free", integer(0)},
                          {"device_rank_rows", integer(0)}, {"device_rank_rows_free", integer(0)},
                          {"device_adapters_free", integer(0)},
                          {"kv_tokens_total", integer(0)}, {"kv_tokens_free", integer(0)}},
                         {"rank", "adapter_bytes", "device_slots", "kv_tokens_total", "kv_tokens_free"});
  s["DetokenizeResponse"] = object({{"prompt", str()}}, {"prompt"});
  s["AdapterStats"] = object({{"name", str()}, {"requests", integer(0)}, {"prompt_tokens", integer(0)},
                              {"generation_tokens", integer(0)}, {"running", integer(0)}, {"waiting", integer(0)}},
                             {"name", "requests", "prompt_tokens", "generation_tokens", "running", "waiting"});
  s["Stats"] = object({{"object", str()}, {"clock", num()}, {"time", integer(0)}, {"running", integer(0)},
                       {"waiting", integer(0)}, {"kv_usage", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}}},
                       {"kv_blocks_total", integer(0)}, {"kv_blocks_used", integer(0)}, {"kv_block_size", integer(0)},
                       {"max_loras", integer(0)}, {"prompt_tokens", integer(0)}, {"generation_tokens", integer(0)},
                       {"preemptions", integer(0)}, {"adapters", array_of(ref("AdapterStats"))}},
                      {"object", "clock", "time", "running", "waiting", "kv_usage", "kv_blocks_total",
                       "kv_blocks_used", "prompt_tokens", "generation_tokens", "adapters"});
}

}  // namespace

OJson openapi_schemas(const OpenApiContext& context) {
  OJson s = OJson::object();
  add_tgi_schemas(s, context.limits, context.adapter_ids);
  add_openai_request_schemas(s, context.limits, context.model_names);
  add_openai_response_schemas(s);
  return s;
}

}  // namespace ls::server
