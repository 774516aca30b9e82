// admin_routes.cpp: vLLM's runtime adapter management, POST /v1/load_lora_adapter and /v1/unload_lora_adapter
// (interfaces.md 3.9; present only with --enable-lora-management, as vLLM registers them only with
// VLLM_ALLOW_RUNTIME_LORA_UPDATING; with --admin-key they need that key), GET /v1/adapters (every known
// adapter: source, hash, rank, tier, use) and GET /v1/capacity (room for more adapters and tokens). A load reads,
// validates and maybe downloads the adapter, so it runs on a thread of its own and answers through a
// ResponseSource when done: the I/O thread never waits on it.
#include <charconv>
#include <mutex>
#include <thread>

#include "server/api.h"

namespace ls::server {
namespace {

HttpResponse text_response(const std::string& text) {
  HttpResponse r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = text;
  return r;
}

HttpResponse invalid_user_input(const std::string& message) {
  return error_response(ApiFamily::kOpenAi, ApiError{400, "InvalidUserInput", message, ""});
}

// A response computed by a task on its own thread; the connection is woken when it is ready.
class TaskSource : public ResponseSource {
 public:
  struct State {
    std::mutex mu;
    std::optional<HttpResponse> result;
  };
  explicit TaskSource(std::shared_ptr<State> state) : state_(std::move(state)) {}
  bool streaming() const override { return false; }
  HttpResponse head() const override { return {}; }
  bool poll(std::string&) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->result.has_value();
  }
  HttpResponse take_response() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return std::move(*state_->result);
  }
  void cancel() override {}  // the load completes anyway; its result is registered for later requests

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

RouteResult Api::run_task(std::function<HttpResponse()> task, const RouteContext& context) {
  auto state = std::make_shared<TaskSource::State>();
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    ++tasks_running_;
  }
  std::thread([this, state, task = std::move(task), wake = context.wake] {
    HttpResponse r = task();
    {
      std::lock_guard<std::mutex> lock(state->mu);
      state->result = std::move(r);
    }
    wake();
    std::lock_guard<std::mutex> lock(tasks_mu_);
    --tasks_running_;
    tasks_cv_.notify_all();
  }).detach();
  return std::make_shared<TaskSource>(state);
}

RouteResult Api::load_lora_adapter(const HttpRequest& request, const RouteContext& context) {
  auto body = parse_body(request.body);
  if (!body.is_ok()) return error_response(ApiFamily::kOpenAi, malformed_body_error(ApiFamily::kOpenAi, body.status()));
  const Fields f(body.value());
  auto name = f.string("lora_name");
  auto path = f.string("lora_path");
  auto inplace = f.boolean("load_inplace");
  auto base = f.string("base_model_name");
  for (const Status& s : {name.status(), path.status(), inplace.status(), base.status()})
    if (!s.is_ok()) return error_response(ApiFamily::kOpenAi, s);
  if (name->value_or("").empty() || path->value_or("").empty())
    return invalid_user_input("Both 'lora_name' and 'lora_path' must be provided.");
  const std::string lora_name = **name, lora_path = **path, base_name = base->value_or("");
  const bool replace = inplace->value_or(false);
  return run_task(
      [this, lora_name, lora_path, base_name, replace] {
        const Status s = engine_.add_adapter(lora_name, lora_path, base_name, replace);
        if (s.is_ok()) return text_response("Success: LoRA adapter '" + lora_name + "' added successfully.");
        if (s.message().find("has already been loaded") != std::string::npos) return invalid_user_input(s.message());
        return error_response(ApiFamily::kOpenAi, s);
      },
      context);
}

HttpResponse Api::unload_lora_adapter(const HttpRequest& request) {
  auto body = parse_body(request.body);
  if (!body.is_ok()) return error_response(ApiFamily::kOpenAi, malformed_body_error(ApiFamily::kOpenAi, body.status()));
  auto name = Fields(body.value()).string("lora_name");
  if (!name.is_ok()) return error_response(ApiFamily::kOpenAi, name.status());
  if (name->value_or("").empty()) return invalid_user_input("'lora_name' needs to be provided to unload a LoRA adapter.");
  const Status s = engine_.remove_adapter(**name);
  if (!s.is_ok()) return error_response(ApiFamily::kOpenAi, s);
  return text_response("Success: LoRA adapter '" + **name + "' removed successfully.");
}

HttpResponse Api::adapters_list() const {
  OJson data = OJson::array();
  for (const AdapterInfo& a : engine_.adapters()) {
    data.push_back({{"name", a.name},
                    {"source", a.source},
                    {"path", a.path},
                    {"base_model_name", a.base_model_name.empty() ? model_.id() : a.base_model_name},
                    {"content_hash", a.content_hash},
                    {"rank", a.rank},
                    {"target_modules", a.target_modules},
                    {"bytes", a.bytes},
                    {"tier", a.tier},
                    {"registered", a.registered},
                    {"last_used", a.last_used},
                    {"requests", a.requests}});
  }
  HttpResponse r;
  r.body = dump_json({{"object", "list"}, {"data", std::move(data)}});
  return r;
}

HttpResponse Api::capacity(const HttpRequest& request) const {
  int64_t rank = 16;
  for (size_t pos = 0; pos < request.query.size();) {
    const size_t amp = std::min(request.query.find('&', pos), request.query.size());
    const std::string item = request.query.substr(pos, amp - pos);
    if (item.rfind("rank=", 0) == 0) {
      const char* begin = item.data() + 5;
      const char* end = item.data() + item.size();
      auto [ptr, ec] = std::from_chars(begin, end, rank);
      if (ec != std::errc() || ptr != end || rank < 1 || rank > 4096)
        return error_response(ApiFamily::kOpenAi,
                               ApiError{400, "BadRequestError", "`rank` must be an integer in [1, 4096]", "rank"});
    }
    pos = amp + 1;
  }
  const EngineCapacity c = engine_.capacity(static_cast<int32_t>(rank));
  HttpResponse r;
  r.body = dump_json({{"rank", c.rank},
                      {"adapter_bytes", c.adapter_bytes},
                      {"host_adapters_free", c.host_adapters_free},
                      {"host_bytes_used", c.host_bytes_used},
                      {"host_bytes_limit", c.host_bytes_limit},
                      {"device_slots", c.device_slots},
                      {"device_slots_free", c.device_slots_free},
                      {"device_rank_rows", c.device_rank_rows},
                      {"device_rank_rows_free", c.device_rank_rows_free},
                      {"device_adapters_free", c.device_adapters_free},
                      {"kv_tokens_total", c.kv_tokens_total},
                      {"kv_tokens_free", c.kv_tokens_free}});
  return r;
}

}  // namespace ls::server
