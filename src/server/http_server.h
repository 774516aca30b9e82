// http_server.h: HttpServer, the HTTP/1.1 transport: an acceptor and a small pool of I/O threads (Boost.Beast
// on Asio), one coroutine per connection on its own strand, keep-alive, a request body limit (413), read and
// write timeouts, chunked server-sent-event streams, and a watcher that notices a client that hangs up while
// its response is still being generated (the response source is then cancelled, which aborts the engine
// request). Routing is the Handler's job; the transport knows nothing about the APIs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "server/http_types.h"

namespace ls::server {

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;                 // 0: any free port (see port())
  int io_threads = 2;
  size_t max_body_bytes = 8u << 20;     // larger bodies get 413
  double idle_timeout_s = 75;           // keep-alive: wait this long for the next request's header
  double read_timeout_s = 30;           // a request's header and body, once it has begun
  double write_timeout_s = 60;          // one write (a slow reader beyond this is dropped)
  double stream_keep_alive_s = 15;      // an idle event stream sends ResponseSource::keep_alive() this often
  // Renders transport-level errors (400 bad request line, 413 body too large, 431 header too large) in the
  // shape of the route family of `path`; the default is a plain-text body.
  std::function<HttpResponse(const std::string& path, int status, const std::string& message)> error_response;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();  // shutdown(0) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Fails (kUnavailable) when the address cannot be bound.
  Status start();
  uint16_t port() const;  // the bound port
  // Stops accepting new connections and closes idle keep-alive ones; busy connections finish their response
  // and then close. Idempotent.
  void stop_accepting();
  // Stops accepting; connections finish their current response (idle keep-alive ones are closed), for up to
  // drain_seconds; then the I/O threads stop. Idempotent.
  void shutdown(double drain_seconds);
  // Connections currently open.
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ls::server
