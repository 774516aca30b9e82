// api.cpp: the route table, the API-key guard, and the routes that answer at once (health, info, models,
// metrics, version, OpenAPI document, tokenize/detokenize). GET / is the page (ui_routes.cpp) unless the server
// runs with --no-ui, when it is TGI's health route again; /health and /ping always are.
#include "server/api.h"

#include <set>

#include "core/utf8.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/openapi.h"
#include "server/tgi_request.h"
#include "server/web_assets.h"

namespace ls::server {
namespace {

HttpResponse json_response(const OJson& body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = dump_json(body);
  return r;
}

// Compares in time that depends only on the lengths, not on where the strings differ.
bool constant_time_equal(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

// Routes open without an API key (TGI's info routes and vLLM's open paths).
bool is_open_route(const HttpRequest& r) {
  if (r.path.rfind("/v1/", 0) == 0) return false;
  return r.method == "GET";
}

OJson permission_json(int64_t created) {
  return OJson::array({{{"id", "modelperm-loraserve"},
                        {"object", "model_permission"},
                        {"created", created},
                        {"allow_create_engine", false},
                        {"allow_sampling", true},
                        {"allow_logprobs", true},
                        {"allow_search_indices", false},
                        {"allow_view", true},
                        {"allow_fine_tuning", false},
                        {"organization", "*"},
                        {"group", OJson()},
                        {"is_blocking", false}}});
}

// TGI SimpleToken list: ids with byte offsets into `text` and the bytes they cover (lossily decoded).
OJson simple_tokens(const Tokenizer& tokenizer, const std::string& text, bool add_special) {
  OJson out = OJson::array();
  auto enc = tokenizer.encode_with_offsets(text, add_special);
  if (!enc.is_ok()) return out;
  for (size_t i = 0; i < enc->ids.size(); ++i) {
    const auto [start, stop] = enc->offsets[i];
    out.push_back({{"id", enc->ids[i]},
                   {"text", unicode::to_valid_utf8_lossy(std::string_view(text).substr(start, stop - start))},
                   {"start", start},
                   {"stop", stop}});
  }
  return out;
}

}  // namespace

Api::Api(Engine& engine, ServerOptions options)
    : engine_(engine), options_(std::move(options)), created_(unix_time_now()) {
  ServedModel& served = engine.model();
  model_.codec = &served.codec();
  model_.names = served.names();
  model_.root = served.root();
  model_.compute_type = served.backend().name();
  model_.defaults = served.generation_defaults();
  model_.limits = options_.limits;
  ApiLimits& lim = model_.limits;
  lim.max_model_len = engine.limits().max_model_len;
  lim.vocab_size = static_cast<int64_t>(served.tokenizer().vocab_size());
  if (lim.max_total_tokens <= 0 || lim.max_total_tokens > lim.max_model_len) lim.max_total_tokens = lim.max_model_len;
  if (lim.max_input_tokens <= 0 || lim.max_input_tokens >= lim.max_total_tokens)
    lim.max_input_tokens = lim.max_total_tokens - 1;
  model_.has_adapter = [&engine](const std::string& name) { return engine.has_adapter(name); };
  model_.adapters = [&engine] { return engine.adapters(); };
}

Api::~Api() {
  std::unique_lock<std::mutex> lock(tasks_mu_);
  tasks_cv_.wait(lock, [this] { return tasks_running_ == 0; });
}

// Whether the request's Authorization header is "Bearer <one of keys>" (scheme case-insensitive).
static bool bearer_matches(const HttpRequest& request, const std::vector<std::string>& keys) {
  const std::string header = request.header("authorization");
  const size_t space = header.find(' ');
  if (space == std::string::npos) return false;
  std::string scheme = header.substr(0, space);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer") return false;
  const std::string token = header.substr(header.find_first_not_of(' ', space));
  bool ok = false;
  for (const std::string& key : keys) ok |= constant_time_equal(token, key);
  return ok;
}

bool Api::authorized(const HttpRequest& request) const {
  return options_.api_keys.empty() || bearer_matches(request, options_.api_keys);
}

bool Api::admin_authorized(const HttpRequest& request) const {
  if (options_.admin_keys.empty()) return authorized(request);
  return bearer_matches(request, options_.admin_keys);
}

std::optional<FlightToken> Api::take_flight() {
  const int32_t before = in_flight_.fetch_add(1);
  FlightToken token(&in_flight_);
  if (options_.max_concurrent_requests > 0 && before >= options_.max_concurrent_requests) return std::nullopt;
  return token;
}

HttpResponse Api::transport_error(const std::string& path, int status, const std::string& message) const {
  const ApiFamily family = family_of_path(path);
  std::string type = family == ApiFamily::kTgi ? "validation" : "BadRequestError";
  if (status == 413) type = family == ApiFamily::kTgi ? "validation" : "RequestEntityTooLarge";
  HttpResponse r = error_response(family, ApiError{status, type, message, ""});
  r.close = true;
  return r;
}

RouteResult Api::handle(const HttpRequest& request, const RouteContext& context) {
  const std::string& m = request.method;
  const std::string& p = request.path;
  const bool admin_route = p == "/v1/load_lora_adapter" || p == "/v1/unload_lora_adapter";
  if (admin_route ? !admin_authorized(request) : (!is_open_route(request) && !authorized(request)))
    return unauthorized_response(family_of_path(p));
  if (m == "GET") {
    if (is_page_route(request)) return page_file(request);
    if (p == "/health" || p == "/ping" || p == "/") return health();
    if (p == "/info") return info();
    if (p == "/metrics") return metrics();
    if (p == "/version") return json_response({{"version", options_.version}});
    if (p == "/openapi.json" || p == "/api-doc/openapi.json") return json_response(openapi_document(openapi_context()));
    if (p == "/v1/models") return models();
    if (p == "/v1/capacity") return capacity(request);
    if (p == "/v1/adapters") return adapters_list();
    if (p == "/v1/stats") return stats();
    if (p.rfind("/v1/models/", 0) == 0) return model_card(p.substr(11));
  } else if (m == "POST") {
    if (p == "/generate") return tgi_generate(request, context, "generate");
    if (p == "/generate_stream") return tgi_generate(request, context, "stream");
    if (p == "/") return tgi_generate(request, context, "compat");
    if (p == "/invocations") return invocations(request, context);
    if (p == "/v1/completions") return openai_generate(request, context, false);
    if (p == "/v1/chat/completions") return openai_generate(request, context, true);
    if (p == "/tokenize") return tokenize(request);
    if (p == "/chat_tokenize") return chat_tokenize(request);
    if (p == "/detokenize") return detokenize(request);
    if (options_.enable_lora_management && p == "/v1/load_lora_adapter") return load_lora_adapter(request, context);
    if (options_.enable_lora_management && p == "/v1/unload_lora_adapter") return unload_lora_adapter(request);
  }
  static const std::map<std::string, std::string> kAllowed = {
      {"/health", "GET"}, {"/ping", "GET"}, {"/info", "GET"}, {"/metrics", "GET"}, {"/version", "GET"},
      {"/openapi.json", "GET"}, {"/v1/models", "GET"}, {"/", "GET, POST"}, {"/generate", "POST"},
      {"/generate_stream", "POST"}, {"/invocations", "POST"}, {"/v1/completions", "POST"},
      {"/v1/chat/completions", "POST"}, {"/tokenize", "POST"}, {"/chat_tokenize", "POST"}, {"/detokenize", "POST"},
      {"/v1/capacity", "GET"}, {"/v1/adapters", "GET"}, {"/v1/stats", "GET"}};
  const ApiFamily family = family_of_path(p);
  std::string allow;
  if (auto it = kAllowed.find(p); it != kAllowed.end()) allow = it->second;
  if (p.rfind("/v1/models/", 0) == 0 || p == "/api-doc/openapi.json") allow = "GET";
  if (p != "/" && is_page_route(HttpRequest{"GET", p, "", {}, ""})) allow = "GET";  // a file of the page
  if (options_.enable_lora_management && (p == "/v1/load_lora_adapter" || p == "/v1/unload_lora_adapter"))
    allow = "POST";
  if (!allow.empty()) {
    HttpResponse r = error_response(family, ApiError{405, family == ApiFamily::kTgi ? "method_not_allowed"
                                                                                      : "MethodNotAllowed",
                                                     "method " + m + " is not allowed on " + p, ""});
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  return error_response(family, ApiError{404, family == ApiFamily::kTgi ? "not_found" : "NotFoundError",
                                         "no route for " + m + " " + p, ""});
}

OpenApiContext Api::openapi_context() const {
  OpenApiContext c;
  c.version = options_.version;
  c.limits = model_.limits;
  c.secured = !options_.api_keys.empty();
  c.lora_management = options_.enable_lora_management;
  c.ui = options_.ui;
  if (c.ui) {
    std::set<std::string> types;
    for (const WebAsset& a : web_assets()) {
      if (a.path.rfind("/ui/", 0) == 0) c.page_files.emplace_back(a.path.substr(4));
      if (a.path != "/") types.emplace(a.content_type.substr(0, a.content_type.find(';')));
    }
    c.page_types.assign(types.begin(), types.end());
  }
  c.model_names = {"", "tgi"};
  c.adapter_ids = {"", "__base_model__"};
  for (const std::string& name : model_.names) c.model_names.push_back(name);
  for (const AdapterInfo& a : engine_.adapters()) {
    c.model_names.push_back(a.name);
    c.model_names.push_back(model_.id() + ":" + a.name);
    c.adapter_ids.push_back(a.name);
    if (a.source != a.name) c.adapter_ids.push_back(a.source);
  }
  return c;
}

HttpResponse Api::health() const {
  if (engine_.accepting()) {
    HttpResponse r;
    r.content_type.clear();
    return r;
  }
  return json_response({{"error", "unhealthy"}, {"error_type", "healthcheck"}}, 503);
}

HttpResponse Api::info() const {
  const EngineLimits& el = engine_.limits();
  const ApiLimits& l = model_.limits;
  std::vector<std::string> adapter_names;
  for (const AdapterInfo& a : engine_.adapters()) adapter_names.push_back(a.name);
  return json_response({{"model_id", model_.id()},
                        {"model_sha", OJson()},
                        {"model_dtype", model_.compute_type == "cpu" ? "float32" : "bfloat16"},
                        {"model_device_type", model_.compute_type},
                        {"model_pipeline_tag", "text-generation"},
                        {"max_concurrent_requests", options_.max_concurrent_requests},
                        {"max_best_of", l.max_best_of},
                        {"max_stop_sequences", l.max_stop_sequences},
                        {"max_input_tokens", l.max_input_tokens},
                        {"max_input_length", l.max_input_tokens},
                        {"max_total_tokens", l.max_total_tokens},
                        {"waiting_served_ratio", 1.2},
                        {"max_batch_total_tokens", el.kv_tokens()},
                        {"max_waiting_tokens", 20},
                        {"max_batch_size", el.max_num_seqs},
                        {"validation_workers", options_.http.io_threads},
                        {"max_client_batch_size", l.max_prompts},
                        {"router", "loraserve"},
                        {"version", options_.version},
                        {"sha", OJson()},
                        {"docker_label", OJson()},
                        {"max_model_len", l.max_model_len},
                        {"adapters", adapter_names}});
}

HttpResponse Api::models() const {
  OJson data = OJson::array();
  for (const std::string& name : model_.names)
    data.push_back({{"id", name}, {"object", "model"}, {"created", created_}, {"owned_by", "loraserve"},
                    {"root", model_.root}, {"parent", OJson()}, {"max_model_len", model_.limits.max_model_len},
                    {"permission", permission_json(created_)}});
  for (const AdapterInfo& a : engine_.adapters())
    data.push_back({{"id", a.name}, {"object", "model"}, {"created", created_}, {"owned_by", "loraserve"},
                    {"root", a.path}, {"parent", a.base_model_name.empty() ? model_.id() : a.base_model_name},
                    {"max_model_len", OJson()}, {"permission", permission_json(created_)}});
  return json_response({{"object", "list"}, {"data", std::move(data)}});
}

HttpResponse Api::model_card(const std::string& id) const {
  const HttpResponse all = models();
  const OJson list = OJson::parse(all.body);
  for (const OJson& card : list["data"])
    if (card["id"] == id) return json_response(card);
  return error_response(ApiFamily::kOpenAi, not_found("The model `" + id + "` does not exist."), "model");
}

HttpResponse Api::metrics() const {
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = render_metrics(engine_.stats(), model_.id(), counters_, static_cast<double>(unix_time_now()));
  r.body += render_adapter_tiers(engine_.adapters(), model_.id());
  return r;
}

HttpResponse Api::tokenize(const HttpRequest& request) const {
  auto body = parse_body(request.body);
  if (!body.is_ok()) return error_response(ApiFamily::kTgi, malformed_body_error(ApiFamily::kTgi, body.status()));
  const Tokenizer& tokenizer = model_.tokenizer();
  const OJson& b = body.value();
  if (!b.contains("inputs") && (b.contains("prompt") || b.contains("messages"))) {
    // vLLM's /tokenize: {prompt | messages, add_special_tokens?, return_token_strs?}.
    std::vector<int32_t> ids;
    if (b.contains("messages")) {
      auto chat = parse_chat_request(b, model_);
      if (!chat.is_ok()) return error_response(ApiFamily::kOpenAi, chat.status());
      ids = chat->prompts[0];
    } else {
      const Fields f(b);
      auto prompt = f.string("prompt");
      if (!prompt.is_ok()) return error_response(ApiFamily::kOpenAi, prompt.status());
      auto add_special = f.boolean("add_special_tokens");
      if (!add_special.is_ok()) return error_response(ApiFamily::kOpenAi, add_special.status());
      auto enc = tokenizer.encode(prompt.value().value_or(""), add_special.value().value_or(true));
      if (!enc.is_ok()) return error_response(ApiFamily::kOpenAi, enc.status());
      ids = enc.value();
    }
    OJson out = {{"count", ids.size()}, {"max_model_len", model_.limits.max_model_len}, {"tokens", ids},
                 {"token_strs", OJson()}};
    return json_response(out);
  }
  auto inputs = tgi_inputs(b);
  if (!inputs.is_ok()) return error_response(ApiFamily::kTgi, inputs.status());
  // TGI reads only `inputs` here, but the body must still be a generate request.
  if (auto params = Fields(b).object("parameters"); !params.is_ok())
    return error_response(ApiFamily::kTgi, params.status());
  return json_response(simple_tokens(tokenizer, inputs.value(), /*add_special=*/true));
}

HttpResponse Api::chat_tokenize(const HttpRequest& request) const {
  auto body = parse_body(request.body);
  if (!body.is_ok()) return error_response(ApiFamily::kTgi, malformed_body_error(ApiFamily::kTgi, body.status()));
  auto chat = parse_chat_request(body.value(), model_);
  if (!chat.is_ok()) return error_response(ApiFamily::kTgi, chat.status());
  return json_response({{"tokenize_response", simple_tokens(model_.tokenizer(), chat->templated_text, false)},
                        {"templated_text", chat->templated_text}});
}

HttpResponse Api::detokenize(const HttpRequest& request) const {
  auto body = parse_body(request.body);
  if (!body.is_ok()) return error_response(ApiFamily::kOpenAi, malformed_body_error(ApiFamily::kOpenAi, body.status()));
  const Fields f(body.value());
  if (!f.get("tokens")) return error_response(ApiFamily::kOpenAi, invalid_argument("`tokens` is required"));
  auto tokens = f.integers("tokens");
  if (!tokens.is_ok()) return error_response(ApiFamily::kOpenAi, tokens.status());
  std::vector<int32_t> ids;
  const int64_t vocab = static_cast<int64_t>(model_.tokenizer().vocab_size());
  for (int64_t id : *tokens.value()) {
    if (id < 0 || id >= vocab)
      return error_response(ApiFamily::kOpenAi, invalid_argument("Token id " + std::to_string(id) +
                                                                 " is out of vocabulary"));
    ids.push_back(static_cast<int32_t>(id));
  }
  auto text = model_.tokenizer().decode(ids, false);
  if (!text.is_ok()) return error_response(ApiFamily::kOpenAi, text.status());
  return json_response({{"prompt", text.value()}});
}

}  // namespace ls::server
