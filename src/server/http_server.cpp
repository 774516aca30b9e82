// http_server.cpp: HttpServer on Boost.Beast: the accept loop, one coroutine per connection (read a request,
// route it, write the response or drive its ResponseSource), the disconnect watcher and graceful shutdown.
// Asio errors never throw: every await uses redirect_error.
#include "server/http_server.h"

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <optional>
#include <mutex>
#include <thread>
#include <vector>

#if !defined(BOOST_ASIO_HAS_CO_AWAIT)
#error "the HTTP server needs C++20 coroutines in Asio (GCC 10 or newer with -std=c++20)"
#endif

namespace ls::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

milliseconds ms(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000.0)); }

// One connection's state, shared by its session coroutine, its disconnect watcher and the wake callbacks the
// engine calls. Every field is touched only on the connection's strand.
struct Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)), wake_timer(stream.get_executor()) {}
  beast::tcp_stream stream;
  net::steady_timer wake_timer;
  uint64_t id = 0;
  bool busy = false;         // between reading a request and finishing its response
  bool woken = false;        // a wake arrived since the last poll
  bool watching = false;     // the disconnect watcher is armed
  bool client_gone = false;  // the watcher saw the peer close
};

// The wake function given to routes: posts to the connection's strand; a no-op once the connection is gone. It
// holds no executor of its own, so it may outlive the io_context (an engine drops request streams last).
std::function<void()> make_wake(const std::shared_ptr<Connection>& c) {
  std::weak_ptr<Connection> weak = c;
  return [weak] {
    const std::shared_ptr<Connection> conn = weak.lock();
    if (!conn) return;
    net::post(conn->stream.get_executor(), [weak] {
      if (auto live = weak.lock()) {
        live->woken = true;
        live->wake_timer.cancel();
      }
    });
  };
}

HttpResponse plain_error(const std::string&, int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = message;
  return r;
}

// The status a failed request read is answered with (0: none, the connection just closes: end of stream,
// timeout, reset) and its message.
std::pair<int, std::string> read_error_status(const beast::error_code& ec, size_t max_body_bytes) {
  if (ec == http::error::body_limit)
    return {413, "request body is larger than the limit of " + std::to_string(max_body_bytes) + " bytes"};
  if (ec == http::error::header_limit) return {431, "request header is too large"};
  if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return {400, "malformed HTTP request: " + ec.message()};
  return {0, ""};
}

HttpRequest to_http_request(const http::request<http::string_body>& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  const std::string target(req.target());
  const size_t q = target.find('?');
  out.path = target.substr(0, q);
  if (q != std::string::npos) out.query = target.substr(q + 1);
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto [it, inserted] = out.headers.emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  out.body = req.body();
  return out;
}

template <typename Body>
void set_headers(http::response<Body>& res, const HttpResponse& r) {
  res.set(http::field::server, "loraserve");
  if (!r.content_type.empty()) res.set(http::field::content_type, r.content_type);
  for (const auto& [name, value] : r.headers) res.set(name, value);
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  Handler handler;
  // Declared before the io_context: coroutine frames destroyed with it still unregister their connection.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::weak_ptr<Connection>> connections;
  uint64_t next_id = 1;

  net::io_context ioc;
  tcp::acceptor acceptor{net::make_strand(ioc)};  // on a strand: stop_accepting() closes it from outside
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::atomic<bool> stopping{false};
  bool started = false, stopped = false;
  uint16_t bound_port = 0;

  Impl(HttpServerOptions o, Handler h) : options(std::move(o)), handler(std::move(h)), ioc(std::max(1, options.io_threads)) {
    if (!options.error_response) options.error_response = plain_error;
  }

  net::awaitable<void> accept_loop();
  net::awaitable<void> session(std::shared_ptr<Connection> c);
  net::awaitable<void> watch(std::shared_ptr<Connection> c);
  net::awaitable<bool> write_response(Connection& c, HttpResponse r, unsigned version, bool keep_alive);
  net::awaitable<bool> write_stream_head(Connection& c, const HttpResponse& head, unsigned version, bool keep_alive);
  net::awaitable<bool> run_source(std::shared_ptr<Connection> c, std::shared_ptr<ResponseSource> source,
                                  unsigned version, bool& keep_alive);
  RouteResult route(const HttpRequest& request, const RouteContext& context);
  void forget(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    connections.erase(id);
    cv.notify_all();
  }
  void stop_accepting();
};

net::awaitable<void> HttpServer::Impl::accept_loop() {
  for (;;) {
    tcp::socket socket(net::make_strand(ioc));
    beast::error_code ec;
    co_await acceptor.async_accept(socket, net::redirect_error(net::use_awaitable, ec));
    if (stopping) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted) co_return;
      // Out of file descriptors and the like: back off instead of spinning.
      net::steady_timer pause(co_await net::this_coro::executor, milliseconds(50));
      co_await pause.async_wait(net::redirect_error(net::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto conn = std::make_shared<Connection>(std::move(socket));
    {
      std::lock_guard<std::mutex> lock(mu);
      conn->id = next_id++;
      connections[conn->id] = conn;
    }
    auto executor = conn->stream.get_executor();
    net::co_spawn(executor, session(std::move(conn)), net::detached);
  }
}

RouteResult HttpServer::Impl::route(const HttpRequest& request, const RouteContext& context) {
  try {
    return handler(request, context);
  } catch (const std::exception& e) {
    return options.error_response(request.path, 500, std::string("internal error: ") + e.what());
  }
}

net::awaitable<bool> HttpServer::Impl::write_response(Connection& c, HttpResponse r, unsigned version,
                                                      bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  set_headers(res, r);
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive && !r.close);
  res.prepare_payload();
  beast::error_code ec;
  c.stream.expires_after(ms(options.write_timeout_s));
  co_await http::async_write(c.stream, res, net::redirect_error(net::use_awaitable, ec));
  c.stream.expires_never();
  co_return !ec;
}

// Arms the disconnect watcher: when the socket turns readable while a response is being generated, a peek
// tells end-of-stream (the client hung up: cancel) from a pipelined next request (stop watching).
net::awaitable<void> HttpServer::Impl::watch(std::shared_ptr<Connection> c) {
  beast::error_code ec;
  auto& socket = c->stream.socket();
  co_await socket.async_wait(tcp::socket::wait_read, net::redirect_error(net::use_awaitable, ec));
  if (!c->watching) co_return;
  c->watching = false;
  char byte;
  const ssize_t n = ec ? -1 : ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) co_return;  // data from the client: not a hang-up
  if (n < 0 && !ec && (errno == EAGAIN || errno == EWOULDBLOCK)) co_return;
  c->client_gone = true;
  c->woken = true;
  c->wake_timer.cancel();
}

net::awaitable<bool> HttpServer::Impl::write_stream_head(Connection& c, const HttpResponse& head, unsigned version,
                                                          bool keep_alive) {
  http::response<http::empty_body> res{static_cast<http::status>(head.status), version};
  set_headers(res, head);
  if (version >= 11) res.chunked(true);
  res.keep_alive(keep_alive);
  http::response_serializer<http::empty_body> serializer{res};
  beast::error_code ec;
  c.stream.expires_after(ms(options.write_timeout_s));
  co_await http::async_write_header(c.stream, serializer, net::redirect_error(net::use_awaitable, ec));
  c.stream.expires_never();
  co_return !ec;
}

net::awaitable<bool> HttpServer::Impl::run_source(std::shared_ptr<Connection> c,
                                                  std::shared_ptr<ResponseSource> source, unsigned version,
                                                  bool& keep_alive) {
  beast::error_code ec;
  c->client_gone = false;
  c->watching = true;
  net::co_spawn(c->stream.get_executor(), watch(c), net::detached);
  auto stop_watching = [&] {
    if (!c->watching) return;
    c->watching = false;
    beast::error_code ignored;
    c->stream.socket().cancel(ignored);
  };

  const bool streaming = source->streaming();
  const bool chunked = version >= 11;
  if (!chunked) keep_alive = keep_alive && !streaming;  // HTTP/1.0: the stream ends with the connection
  if (streaming && !co_await write_stream_head(*c, source->head(), version, keep_alive)) {
    source->cancel();
    stop_watching();
    co_return false;
  }

  auto write_body = [&](const std::string& bytes) -> net::awaitable<bool> {
    beast::error_code wec;
    c->stream.expires_after(ms(options.write_timeout_s));
    if (chunked) {
      co_await net::async_write(c->stream, http::make_chunk(net::buffer(bytes)),
                                net::redirect_error(net::use_awaitable, wec));
    } else {
      co_await net::async_write(c->stream, net::buffer(bytes), net::redirect_error(net::use_awaitable, wec));
    }
    c->stream.expires_never();
    co_return !wec;
  };

  std::string out;
  for (;;) {
    out.clear();
    const bool done = source->poll(out);
    if (streaming && !out.empty() && !co_await write_body(out)) {
      source->cancel();
      stop_watching();
      co_return false;
    }
    if (done) break;
    if (c->client_gone) {
      source->cancel();
      co_return false;
    }
    if (!c->woken) {
      c->wake_timer.expires_after(streaming ? ms(options.stream_keep_alive_s) : std::chrono::hours(24));
      co_await c->wake_timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      if (!ec && !c->woken && streaming) {
        const std::string ping = source->keep_alive();
        if (!ping.empty() && !co_await write_body(ping)) {
          source->cancel();
          stop_watching();
          co_return false;
        }
      }
    }
    c->woken = false;
  }
  stop_watching();
  if (!streaming) co_return co_await write_response(*c, source->take_response(), version, keep_alive);
  if (!chunked) co_return true;
  c->stream.expires_after(ms(options.write_timeout_s));
  co_await net::async_write(c->stream, http::make_chunk_last(), net::redirect_error(net::use_awaitable, ec));
  c->stream.expires_never();
  co_return !ec;
}

net::awaitable<void> HttpServer::Impl::session(std::shared_ptr<Connection> c) {
  struct Forget {
    Impl* impl;
    uint64_t id;
    ~Forget() { impl->forget(id); }
  } forget_on_exit{this, c->id};
  beast::flat_buffer buffer;
  beast::error_code ec;
  while (!stopping) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    c->stream.expires_after(ms(options.idle_timeout_s));
    co_await http::async_read_header(c->stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    c->busy = true;
    const std::string path_of_error(parser.get().target());
    if (!ec) {
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        c->stream.expires_after(ms(options.write_timeout_s));
        co_await net::async_write(c->stream, net::buffer(kContinue), net::redirect_error(net::use_awaitable, ec));
      }
      if (!ec) {
        c->stream.expires_after(ms(options.read_timeout_s));
        co_await http::async_read(c->stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
      }
    }
    c->stream.expires_never();
    if (ec) {
      const auto [status, message] = read_error_status(ec, options.max_body_bytes);
      if (status != 0) {
        std::string path = path_of_error.substr(0, path_of_error.find('?'));
        co_await write_response(*c, options.error_response(path, status, message), 11, false);
      }
      break;  // end of stream, timeout, reset: close quietly
    }
    const auto& req = parser.get();
    bool keep_alive = req.keep_alive() && !stopping;
    const HttpRequest request = to_http_request(req);
    RouteContext context{make_wake(c)};
    RouteResult result = route(request, context);
    bool ok;
    if (auto* response = std::get_if<HttpResponse>(&result)) {
      keep_alive = keep_alive && !response->close;
      ok = co_await write_response(*c, std::move(*response), req.version(), keep_alive);
    } else {
      ok = co_await run_source(c, std::get<std::shared_ptr<ResponseSource>>(std::move(result)), req.version(),
                               keep_alive);
    }
    c->busy = false;
    if (!ok || !keep_alive) break;
  }
  beast::error_code ignored;
  c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  c->stream.socket().close(ignored);
}

void HttpServer::Impl::stop_accepting() {
  if (stopping.exchange(true)) return;
  net::post(acceptor.get_executor(), [this] {
    beast::error_code ignored;
    acceptor.close(ignored);
  });
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [id, weak] : connections) {
    auto conn = weak.lock();
    if (!conn) continue;
    net::post(conn->stream.get_executor(), [conn] {
      if (!conn->busy) conn->stream.cancel();  // an idle keep-alive connection waiting for a request
    });
  }
}

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { shutdown(0); }

Status HttpServer::start() {
  Impl& s = *impl_;
  if (s.started) return Status::ok();
  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.host, ec);
  if (ec) return invalid_argument("--host: \"" + s.options.host + "\" is not an IP address");
  const tcp::endpoint endpoint(address, s.options.port);
  auto fail = [&](const char* what) {
    return unavailable(std::string("cannot ") + what + " " + s.options.host + ":" + std::to_string(s.options.port) +
                       ": " + ec.message());
  };
  s.acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  s.acceptor.bind(endpoint, ec);
  if (ec) return fail("listen on");
  s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  s.bound_port = s.acceptor.local_endpoint(ec).port();
  s.work.emplace(s.ioc.get_executor());
  net::co_spawn(s.acceptor.get_executor(), s.accept_loop(), net::detached);
  for (int i = 0; i < std::max(1, s.options.io_threads); ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
  s.started = true;
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::stop_accepting() {
  if (impl_->started) impl_->stop_accepting();
}

size_t HttpServer::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections.size();
}

void HttpServer::shutdown(double drain_seconds) {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stop_accepting();
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_for(lock, ms(drain_seconds), [&] { return s.connections.empty(); });
  }
  s.work.reset();
  s.ioc.stop();
  for (std::thread& t : s.threads) t.join();
  s.threads.clear();
}

}  // namespace ls::server
