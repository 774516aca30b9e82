// api.h: Api, every HTTP route of loraserve: the route table (TGI's published routes plus vLLM's), the API-key
// guard, and the handlers. Generation routes validate and tokenize on the calling I/O thread, submit to the
// Engine and answer with a ResponseSource that the connection drives; the rest answer at once. Route bodies
// live in api.cpp (model info, health, tokenize), tgi_routes.cpp, openai_routes.cpp, admin_routes.cpp
// (runtime adapter management, capacity) and ui_routes.cpp (the page and the dashboard's stats).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "engine/engine.h"
#include "server/api_error.h"
#include "server/api_model.h"
#include "server/http_types.h"
#include "server/metrics_text.h"
#include "server/openapi.h"
#include "server/server_options.h"

namespace ls::server {

// Holds one of the max_concurrent_requests places while a generation request is in flight.
class FlightToken {
 public:
  FlightToken() = default;
  explicit FlightToken(std::atomic<int32_t>* counter) : counter_(counter) {}
  FlightToken(FlightToken&& o) noexcept : counter_(o.counter_) { o.counter_ = nullptr; }
  FlightToken& operator=(FlightToken&&) = delete;
  ~FlightToken() {
    if (counter_) counter_->fetch_sub(1);
  }

 private:
  std::atomic<int32_t>* counter_ = nullptr;
};

class Api {
 public:
  Api(Engine& engine, ServerOptions options);
  ~Api();  // waits for adapter loads still running on their threads

  RouteResult handle(const HttpRequest& request, const RouteContext& context);
  // Transport-level errors (413, 431, 400) in the family shape of the path.
  HttpResponse transport_error(const std::string& path, int status, const std::string& message) const;

  const ApiModel& model() const { return model_; }
  const ServerOptions& options() const { return options_; }
  ServerCounters& counters() { return counters_; }

 private:
  bool authorized(const HttpRequest& request) const;
  // A place among max_concurrent_requests, or nullopt when all are taken.
  std::optional<FlightToken> take_flight();

  // api.cpp
  HttpResponse info() const;
  HttpResponse health() const;
  HttpResponse models() const;
  HttpResponse model_card(const std::string& id) const;
  HttpResponse metrics() const;
  HttpResponse tokenize(const HttpRequest& request) const;
  HttpResponse chat_tokenize(const HttpRequest& request) const;
  HttpResponse detokenize(const HttpRequest& request) const;
  OpenApiContext openapi_context() const;
  // tgi_routes.cpp. mode: "generate", "stream" or "compat" (/ and /invocations, where the body's `stream`
  // field decides).
  RouteResult tgi_generate(const HttpRequest& request, const RouteContext& context, const std::string& mode);
  RouteResult invocations(const HttpRequest& request, const RouteContext& context);
  // openai_routes.cpp
  RouteResult openai_generate(const HttpRequest& request, const RouteContext& context, bool chat);
  // admin_routes.cpp
  RouteResult load_lora_adapter(const HttpRequest& request, const RouteContext& context);
  HttpResponse unload_lora_adapter(const HttpRequest& request);
  HttpResponse capacity(const HttpRequest& request) const;
  HttpResponse adapters_list() const;
  bool admin_authorized(const HttpRequest& request) const;
  // ui_routes.cpp. A page route: GET of an embedded file of web/ while the page is on (options_.ui).
  bool is_page_route(const HttpRequest& request) const;
  HttpResponse page_file(const HttpRequest& request) const;
  HttpResponse stats() const;
  // Runs task on a thread of its own; its response is sent when it returns.
  RouteResult run_task(std::function<HttpResponse()> task, const RouteContext& context);

  Engine& engine_;
  ServerOptions options_;
  ApiModel model_;
  ServerCounters counters_;
  std::atomic<int32_t> in_flight_{0};
  int64_t created_;  // unix time at start-up (model cards)
  std::mutex tasks_mu_;
  std::condition_variable tasks_cv_;
  int32_t tasks_running_ = 0;
};

}  // namespace ls::server
