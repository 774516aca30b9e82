// http_types.h: the HTTP request and response values the routes work with, independent of the transport
// (http_server.cpp speaks Boost.Beast; tests call routes directly). A route answers with either a complete
// HttpResponse or a ResponseSource: a response that the engine fills over time (a non-streaming generation,
// whose body is ready only at the end, or a server-sent-events stream).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace ls::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // without the query string
  std::string query;                           // after '?', undecoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  bool close = false;  // close the connection after this response
};

// A response produced by the engine over time. The connection calls poll() whenever it is woken (the wake
// function given to the route, which the engine's notify calls), on the connection's own executor.
class ResponseSource {
 public:
  virtual ~ResponseSource() = default;
  // Streaming sources send head() first (status 200, text/event-stream) and then the bytes poll() appends.
  virtual bool streaming() const = 0;
  virtual HttpResponse head() const = 0;
  // Consumes what is ready without blocking. Streaming: appends body bytes to out. Returns true once complete;
  // a non-streaming source then has its response in take_response().
  virtual bool poll(std::string& out) = 0;
  virtual HttpResponse take_response() = 0;
  // The client went away (or a write failed): abort whatever still runs.
  virtual void cancel() = 0;
  // Bytes a stream sends when idle for a while, so proxies keep it open ("" for none).
  virtual std::string keep_alive() const { return ""; }
};

// What a route returns.
using RouteResult = std::variant<HttpResponse, std::shared_ptr<ResponseSource>>;

// Passed to a route: `wake` may be called from any thread (it only posts to the connection's executor).
struct RouteContext {
  std::function<void()> wake;
};

using Handler = std::function<RouteResult(const HttpRequest&, const RouteContext&)>;

}  // namespace ls::server
