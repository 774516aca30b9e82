// ui_routes.cpp: the page's routes. GET / and GET /ui/{file} serve the embedded files of web/ (web_assets.h)
// with their content type, an ETag that a revalidation (If-None-Match) answers with 304, and headers that keep
// the page to itself: a Content-Security-Policy allowing only this server's own scripts, styles, images and
// connections (no inline code, no third party, no framing). The files are static and hold no data, so they
// are open even with --api-key; the page asks for the key and sends it on the API routes it calls. GET
// /v1/stats is the JSON snapshot the dashboard polls (running and waiting requests, KV cache, tokens per
// adapter, and the engine clock that /v1/adapters' last_used is read on).
#include "engine/request.h"
#include "server/api.h"
#include "server/openai_response.h"
#include "server/web_assets.h"

namespace ls::server {
namespace {

constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const WebAsset* find_asset(const std::string& path) {
  for (const WebAsset& a : web_assets())
    if (a.path == path) return &a;
  return nullptr;
}

// Whether an If-None-Match header names this ETag (or is "*"); weak validators compare equal too.
bool etag_matches(const std::string& header, std::string_view etag) {
  if (header.empty()) return false;
  if (header.find('*') != std::string::npos) return true;
  return header.find(etag) != std::string::npos;
}

}  // namespace

bool Api::is_page_route(const HttpRequest& request) const {
  return options_.ui && (request.path == "/" || request.path.rfind("/ui/", 0) == 0) && find_asset(request.path);
}

HttpResponse Api::page_file(const HttpRequest& request) const {
  const WebAsset* asset = find_asset(request.path);
  HttpResponse r;
  r.headers = {{"Cache-Control", "no-cache"},
               {"ETag", std::string(asset->etag)},
               {"Content-Security-Policy", kContentSecurityPolicy},
               {"X-Content-Type-Options", "nosniff"},
               {"X-Frame-Options", "DENY"},
               {"Referrer-Policy", "no-referrer"}};
  if (etag_matches(request.header("if-none-match"), asset->etag)) {
    r.status = 304;
    r.content_type.clear();
    return r;
  }
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->body);
  return r;
}

HttpResponse Api::stats() const {
  const EngineStats s = engine_.stats();
  OJson adapters = OJson::array();
  for (const auto& [name, a] : s.adapters) {
    adapters.push_back({{"name", name.empty() ? kBaseAdapterLabel : name},
                        {"requests", a.requests},
                        {"prompt_tokens", a.prompt_tokens},
                        {"generation_tokens", a.generation_tokens},
                        {"running", a.running},
                        {"waiting", a.waiting}});
  }
  HttpResponse r;
  r.headers.emplace_back("Cache-Control", "no-store");
  r.body = dump_json({{"object", "stats"},
                      {"clock", engine_clock_seconds()},
                      {"time", unix_time_now()},
                      {"running", s.running},
                      {"waiting", s.waiting},
                      {"kv_usage", s.kv_usage()},
                      {"kv_blocks_total", s.kv_blocks_total},
                      {"kv_blocks_used", s.kv_blocks_used},
                      {"kv_block_size", s.block_size},
                      {"max_loras", s.max_loras},
                      {"prompt_tokens", s.prompt_tokens},
                      {"generation_tokens", s.generation_tokens},
                      {"preemptions", s.preemptions},
                      {"adapters", std::move(adapters)}});
  return r;
}

}  // namespace ls::server
