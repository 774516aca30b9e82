// server_options.h: ServerOptions, every setting of the HTTP side in one struct (filled by `loraserve serve`
// from its flags; nothing here reads the environment).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "server/api_model.h"
#include "server/http_server.h"

namespace ls::server {

inline constexpr const char* kLoraserveVersion = "0.1.0";

struct ServerOptions {
  HttpServerOptions http;
  std::vector<std::string> api_keys;      // non-empty: generation and model routes need "Bearer <key>"
  std::vector<std::string> admin_keys;    // non-empty: the adapter management routes need one of these instead
  ApiLimits limits;                       // max_model_len comes from the engine; 0 elsewhere = derived
  int32_t max_concurrent_requests = 1024; // generation requests in flight; beyond: 429 overloaded
  bool enable_lora_management = false;    // POST /v1/load_lora_adapter and /v1/unload_lora_adapter exist
  bool ui = true;                         // GET / is the page (web/) and /ui/* its files; false: / is health
  std::string version = kLoraserveVersion;
};

}  // namespace ls::server
