// demo_api.cpp: DemoApi.
#include "demo_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace ls::testing {

struct Waker {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  void wake() {
    std::lock_guard<std::mutex> lock(mu);
    woken = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5), [this] { return woken; });
    woken = false;
  }
};

std::string RouteReply::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return "";
}

std::string demo_model_dir() { return std::string(LS_SOURCE_DIR) + "/models/demo/base"; }

DemoApi& DemoApi::shared() {
  static DemoApi* api = new DemoApi({"calc", "upper"}, server::ServerOptions());
  return *api;
}

DemoApi::DemoApi(const std::vector<std::string>& adapters, server::ServerOptions options) {
  ServedModelOptions mo;
  mo.model = demo_model_dir();
  mo.served_names = {"demo", "demo-alias"};
  mo.backend.cpu_threads = 1;
  auto model = ServedModel::load(mo);
  if (!model.is_ok()) {
    ADD_FAILURE() << model.status().to_string();
    return;
  }
  model_ = std::move(model).value();
  EngineOptions eo;
  eo.kv_cache_bytes = int64_t{64} << 20;
  eo.max_num_seqs = 16;
  auto engine = Engine::create(*model_, eo);
  if (!engine.is_ok()) {
    ADD_FAILURE() << engine.status().to_string();
    return;
  }
  engine_ = std::move(engine).value();
  const std::string adapters_dir = std::string(LS_SOURCE_DIR) + "/models/demo/adapters/";
  for (const std::string& name : adapters) {
    Status s = engine_->add_adapter(name, adapters_dir + name);
    if (!s.is_ok()) ADD_FAILURE() << s.to_string();
  }
  engine_->start();
  api_ = std::make_unique<server::Api>(*engine_, std::move(options));
}

DemoApi::~DemoApi() {
  if (engine_) engine_->shutdown(0);
}

RouteReply DemoApi::finish(server::RouteResult result, Waker& waker) {
  RouteReply reply;
  if (auto* r = std::get_if<server::HttpResponse>(&result)) {
    reply.status = r->status;
    reply.content_type = r->content_type;
    reply.headers = r->headers;
    reply.body = r->body;
    return reply;
  }
  auto source = std::get<std::shared_ptr<server::ResponseSource>>(result);
  if (source->streaming()) {
    const server::HttpResponse head = source->head();
    reply.status = head.status;
    reply.content_type = head.content_type;
    reply.headers = head.headers;
    reply.streamed = true;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (;;) {
    std::string out;
    const bool done = source->poll(out);
    reply.body += out;
    if (done) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "generation did not finish in 120 s";
      source->cancel();
      break;
    }
    waker.wait();
  }
  if (!source->streaming()) {
    server::HttpResponse r = source->take_response();
    reply.status = r.status;
    reply.content_type = r.content_type;
    reply.headers = r.headers;
    reply.body = r.body;
  }
  return reply;
}

RouteReply DemoApi::call(const std::string& method, const std::string& path, const std::string& body,
                         std::vector<std::pair<std::string, std::string>> headers) {
  server::HttpRequest request;
  request.method = method;
  request.path = path;
  request.body = body;
  for (auto& [k, v] : headers) request.headers[k] = v;
  auto waker = std::make_shared<Waker>();
  server::RouteContext context{[waker] { waker->wake(); }};
  return finish(api_->handle(request, context), *waker);
}

}  // namespace ls::testing
