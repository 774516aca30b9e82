// demo_api.h: the real routes (server::Api) over the demo model and a running Engine, without a network, for
// the server tests: requests go to Api::handle and a ResponseSource is driven to completion the way a
// connection drives it (woken by the engine's notify, polled until done).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/served_model.h"
#include "server/api.h"

namespace ls::testing {

struct Waker;

struct RouteReply {
  int status = 0;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the whole body, or every byte of an event stream
  bool streamed = false;
  std::string header(const std::string& name) const;
};

class DemoApi {
 public:
  // The demo model (models/demo/base) with the given adapters registered (name -> directory under
  // models/demo/adapters) and a small KV pool.
  static DemoApi& shared();
  DemoApi(const std::vector<std::string>& adapters, server::ServerOptions options);
  ~DemoApi();

  server::Api& api() { return *api_; }
  Engine& engine() { return *engine_; }
  ServedModel& model() { return *model_; }

  RouteReply call(const std::string& method, const std::string& path, const std::string& body = "",
                  std::vector<std::pair<std::string, std::string>> headers = {});
  // Drives a route result to completion (as a connection does).
  static RouteReply finish(server::RouteResult result, Waker& waker);

 private:
  std::unique_ptr<ServedModel> model_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Api> api_;
};

std::string demo_model_dir();

}  // namespace ls::testing
