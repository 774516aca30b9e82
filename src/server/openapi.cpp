// openapi.cpp: the paths of the OpenAPI document: every route with its request body and each status it can
// answer with (security: the bearer API key, which routes need when the server runs with --api-key).
#include "server/openapi.h"

namespace ls::server {
namespace {

OJson ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

OJson json_content(OJson schema) { return {{"application/json", {{"schema", std::move(schema)}}}}; }

// An event stream's content: each event's `data` is JSON of one of `event_schemas` (or, with done_marker,
// the literal [DONE] that ends OpenAI streams).
OJson sse_content(OJson event_schemas, bool done_marker) {
  OJson json_data = {{"type", "string"},
                     {"contentMediaType", "application/json"},
                     {"contentSchema", {{"anyOf", std::move(event_schemas)}}}};
  OJson data = json_data;
  if (done_marker) data = {{"if", {{"const", "[DONE]"}}}, {"then", {{"type", "string"}}}, {"else", json_data}};
  OJson event = {{"type", "object"}, {"required", OJson::array({"data"})}, {"properties", {{"data", data}}}};
  OJson content = OJson::object();
  content["text/event-stream"] = {{"schema", std::move(event)}};
  return content;
}

OJson response(const std::string& description, OJson content = nullptr) {
  OJson r = {{"description", description}};
  if (!content.is_null()) r["content"] = std::move(content);
  return r;
}

// The error statuses of a TGI/LoRAX generation route.
void add_tgi_errors(OJson& responses) {
  const OJson error = json_content(ref("ErrorResponse"));
  responses["400"] = response("Malformed request body", error);
  responses["401"] = response("Missing or wrong API key (empty body)");
  responses["413"] = response("Request body too large", error);
  responses["422"] = response("Input validation error", error);
  responses["424"] = response("Generation error", error);
  responses["429"] = response("Model is overloaded", error);
  responses["500"] = response("Incomplete generation", error);
  responses["503"] = response("Server shutting down", error);
}

void add_openai_errors(OJson& responses) {
  const OJson error = json_content(ref("OpenAIError"));
  responses["400"] = response("Bad request", error);
  responses["401"] = response("Missing or wrong API key", json_content(ref("Unauthorized")));
  responses["404"] = response("Unknown model", error);
  responses["413"] = response("Request body too large", error);
  responses["429"] = response("Too many requests in flight", error);
  responses["500"] = response("Generation error", error);
  responses["503"] = response("Server shutting down", error);
}

OJson operation(const std::string& id, const std::string& summary, const std::string& tag) {
  return {{"tags", OJson::array({tag})}, {"summary", summary}, {"operationId", id}};
}

OJson post(const std::string& id, const std::string& summary, const std::string& tag, const std::string& request,
           OJson responses, bool secured) {
  OJson op = operation(id, summary, tag);
  op["requestBody"] = {{"required", true}, {"content", json_content(ref(request))}};
  op["responses"] = std::move(responses);
  if (secured) op["security"] = OJson::array({{{"bearer", OJson::array()}}});
  return op;
}

OJson get(const std::string& id, const std::string& summary, const std::string& tag, OJson responses,
          bool secured = false) {
  OJson op = operation(id, summary, tag);
  op["responses"] = std::move(responses);
  if (secured) op["security"] = OJson::array({{{"bearer", OJson::array()}}});
  return op;
}

OJson tgi_generation(const std::string& id, const std::string& summary, const std::string& request, OJson ok_content) {
  OJson responses = {{"200", response("Generated text", std::move(ok_content))}};
  add_tgi_errors(responses);
  return post(id, summary, "TGI / LoRAX", request, std::move(responses), true);
}

OJson openai_generation(const std::string& id, const std::string& summary, const std::string& request,
                        const std::string& result) {
  OJson content = json_content(ref(result));
  content.update(sse_content(OJson::array({ref("StreamChunk"), ref("OpenAIError")}), true));
  OJson responses = {{"200", response("Generated completion (or an event stream when stream is true)", content)}};
  add_openai_errors(responses);
  return post(id, summary, "OpenAI", request, std::move(responses), true);
}

// vLLM's runtime adapter management and the capacity report.
void add_admin_paths(OJson& p, bool lora_management) {
  const OJson error = json_content(ref("OpenAIError"));
  OJson capacity = {{"200", response("Room for adapters and tokens", json_content(ref("Capacity")))},
                    {"400", response("Bad rank", error)},
                    {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))}};
  OJson capacity_op = get("capacity", "Room for more adapters of a rank, device slots and KV tokens", "Adapters",
                          capacity, true);
  capacity_op["parameters"] = OJson::array({{{"name", "rank"}, {"in", "query"}, {"required", false},
                                             {"schema", {{"type", "integer"}, {"minimum", 1}, {"maximum", 4096}}}}});
  p["/v1/capacity"] = {{"get", capacity_op}};
  p["/v1/adapters"] = {{"get", get("adapters", "Every known adapter: source, content hash, rank, tier, use", "Adapters",
                                   {{"200", response("Adapters", json_content(ref("AdapterList")))},
                                    {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))}},
                                   true)}};
  if (!lora_management) return;
  const OJson text = {{"text/plain", {{"schema", {{"type", "string"}}}}}};
  for (const char* route : {"load", "unload"}) {
    OJson responses = {{"200", response(std::string("Adapter ") + route + "ed", text)},
                       {"400", response("Invalid input", error)},
                       {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))},
                       {"404", response("Adapter not found", error)},
                       {"424", response("Adapter download failed", error)},
                       {"500", response("Adapter failed to load", error)},
                       {"503", response("Server shutting down", error)}};
    const std::string name = std::string(route) + "_lora_adapter";
    p["/v1/" + name] = {{"post", post(name, std::string("Runtime adapter ") + route + " (vLLM)", "Adapters",
                                      route == std::string("load") ? "LoadLoraAdapterRequest"
                                                                   : "UnloadLoraAdapterRequest",
                                      responses, true)}};
  }
}

// The page (GET / and the files under /ui/) and the stats its dashboard polls.
void add_page_paths(OJson& p, const OpenApiContext& c) {
  p["/v1/stats"] = {{"get", get("stats", "Running and waiting requests, KV cache and tokens per adapter now", "Adapters",
                                {{"200", response("Engine statistics", json_content(ref("Stats")))},
                                 {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))}},
                                true)}};
  if (!c.ui) return;
  const OJson text = {{"type", "string"}};
  const OJson not_modified = response("Not modified (If-None-Match named the current ETag)");
  p["/"]["get"] = get("page", "The playground and dashboard page (HTML; --no-ui makes this the health check)",
                      "Page", {{"200", response("The page", {{"text/html", {{"schema", text}}}})}, {"304", not_modified}});
  OJson types = OJson::object();
  for (const std::string& type : c.page_types) types[type] = {{"schema", text}};
  OJson file = get("page_file", "A file of the page (script, style sheet, icon)", "Page",
                   {{"200", response("The file", types)},
                    {"304", not_modified},
                    {"404", response("No such file", json_content(ref("ErrorResponse")))}});
  file["parameters"] = OJson::array({{{"name", "file"}, {"in", "path"}, {"required", true},
                                      {"schema", {{"type", "string"}, {"enum", c.page_files}}}}});
  p["/ui/{file}"] = {{"get", file}};
}

OJson paths() {
  OJson p = OJson::object();
  const OJson generate = json_content(ref("GenerateResponse"));
  const OJson stream = sse_content(OJson::array({ref("StreamResponse"), ref("ErrorResponse")}), false);
  OJson compat = json_content({{"type", "array"}, {"items", ref("GenerateResponse")}});
  compat.update(stream);
  const OJson health = {{"200", response("Healthy (empty body)")},
                        {"503", response("Unhealthy", json_content(ref("ErrorResponse")))}};

  p["/"] = {{"get", get("health_root", "Health check", "Service", health)},
            {"post", tgi_generation("compat_generate",
                                    "Generate text; a JSON array, or an event stream when `stream` is true",
                                    "CompatGenerateRequest", compat)}};
  p["/generate"] = {{"post", tgi_generation("generate", "Generate text", "GenerateRequest", generate)}};
  p["/generate_stream"] = {{"post", tgi_generation("generate_stream", "Generate a stream of tokens (server-sent "
                                                   "events, `data:{json}`)", "GenerateRequest", stream)}};
  OJson invocations = compat;
  invocations["application/json"]["schema"] = {
      {"anyOf", OJson::array({{{"type", "array"}, {"items", ref("GenerateResponse")}}, ref("ChatCompletion"),
                              ref("Completion")})}};
  OJson invocation_errors = {{"200", response("Generated text", invocations)}};
  add_tgi_errors(invocation_errors);
  invocation_errors["400"]["content"]["application/json"]["schema"] = {
      {"anyOf", OJson::array({ref("ErrorResponse"), ref("OpenAIError")})}};
  invocation_errors["404"] = response("Unknown model", json_content(ref("OpenAIError")));
  p["/invocations"] = {{"post", post("sagemaker_compatibility",
                                     "SageMaker: a compat, chat or completion request by its shape", "TGI / LoRAX",
                                     "CompatGenerateRequest", invocation_errors, true)}};

  OJson tokenize = {{"200", response("Tokens with byte offsets (TGI), or vLLM's token list for a prompt/messages "
                                     "body", json_content({{"anyOf", OJson::array({ref("TokenizeResponse"),
                                                                                   ref("VllmTokenizeResponse")})}}))}};
  const OJson either_error = json_content({{"anyOf", OJson::array({ref("ErrorResponse"), ref("OpenAIError")})}});
  for (const char* code : {"400", "404", "422"}) tokenize[code] = response("Invalid request", either_error);
  tokenize["401"] = response("Missing or wrong API key (empty body)");
  tokenize["413"] = response("Request body too large", either_error);
  p["/tokenize"] = {{"post", post("tokenize", "Tokenize inputs", "TGI / LoRAX", "TokenizeRequest", tokenize, true)}};

  OJson chat_tokenize = {{"200", response("Templated and tokenized chat", json_content(ref("ChatTokenizeResponse")))}};
  add_tgi_errors(chat_tokenize);
  p["/chat_tokenize"] = {{"post", post("chat_tokenize", "Template and tokenize a chat request", "TGI / LoRAX",
                                       "ChatCompletionRequest", chat_tokenize, true)}};

  OJson detokenize = {{"200", response("Text of the tokens", json_content(ref("DetokenizeResponse")))}};
  add_openai_errors(detokenize);
  detokenize["401"] = response("Missing or wrong API key (empty body)");
  p["/detokenize"] = {{"post", post("detokenize", "Detokenize token ids", "OpenAI", "DetokenizeRequest",
                                    detokenize, true)}};

  p["/v1/completions"] = {{"post", openai_generation("completions", "Completions", "CompletionRequest",
                                                     "Completion")}};
  p["/v1/chat/completions"] = {{"post", openai_generation("chat_completions", "Chat completions",
                                                          "ChatCompletionRequest", "ChatCompletion")}};
  OJson models = {{"200", response("Base model and adapters", json_content(ref("ModelList")))},
                  {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))}};
  p["/v1/models"] = {{"get", get("models", "List models (the base model's names and every adapter)", "OpenAI",
                                 models, true)}};
  OJson card = {{"200", response("One model", json_content(ref("ModelCard")))},
                {"401", response("Missing or wrong API key", json_content(ref("Unauthorized")))},
                {"404", response("Unknown model", json_content(ref("OpenAIError")))}};
  OJson card_op = get("model", "One model card", "OpenAI", card, true);
  card_op["parameters"] = OJson::array({{{"name", "model_id"}, {"in", "path"}, {"required", true},
                                         {"schema", {{"type", "string"}}}}});
  p["/v1/models/{model_id}"] = {{"get", card_op}};

  p["/health"] = {{"get", get("health", "Health check", "Service", health)}};
  p["/ping"] = {{"get", get("ping", "Health check (SageMaker, vLLM)", "Service", health)}};
  p["/info"] = {{"get", get("info", "Model and server limits (TGI and LoRAX fields)", "Service",
                            {{"200", response("Served model info", json_content(ref("Info")))}})}};
  p["/metrics"] = {{"get", get("metrics", "Prometheus metrics (vLLM names, per-adapter series, TGI counters)",
                               "Service", {{"200", response("Prometheus text",
                                                            {{"text/plain", {{"schema", {{"type", "string"}}}}}})}})}};
  p["/version"] = {{"get", get("version", "Server version", "Service",
                               {{"200", response("Version", json_content(ref("Version")))}})}};
  p["/openapi.json"] = {{"get", get("openapi", "This document", "Service",
                                    {{"200", response("OpenAPI document", json_content({{"type", "object"}}))}})}};
  return p;
}

}  // namespace

OJson openapi_document(const OpenApiContext& context) {
  OJson p = paths();
  add_admin_paths(p, context.lora_management);
  add_page_paths(p, context);
  if (!context.secured) {
    for (auto path = p.begin(); path != p.end(); ++path)
      for (auto op = path.value().begin(); op != path.value().end(); ++op) op.value().erase("security");
  }
  return {{"openapi", "3.0.3"},
          {"info",
           {{"title", "loraserve"},
            {"description", "Multi-LoRA inference server: TGI/LoRAX and OpenAI (vLLM) APIs"},
            {"license", {{"name", "Apache 2.0"}}},
            {"version", context.version}}},
          {"paths", std::move(p)},
          {"components",
           {{"schemas", openapi_schemas(context)},
            {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
}

}  // namespace ls::server
