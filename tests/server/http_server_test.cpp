// http_server_test.cpp: the HTTP transport on a real socket (HttpServer with handlers written here, no engine):
// keep-alive (two requests on one connection), Connection: close, Expect: 100-continue, the body limit (413),
// malformed requests (400), chunked event streams driven by wake-ups from another thread, and the disconnect
// watcher (a client that hangs up mid-stream gets its ResponseSource cancelled).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "server/http_server.h"

namespace ls::server {
namespace {

using namespace std::chrono_literals;

// A plain client socket.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { close(); }
  bool connected() const { return connected_; }
  void send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // Reads until `marker` has been seen (or EOF / timeout); returns everything read.
  std::string read_until(const std::string& marker) {
    while (buffer_.find(marker) == std::string::npos) {
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    const size_t at = buffer_.find(marker);
    const size_t end = at == std::string::npos ? buffer_.size() : at + marker.size();
    std::string out = buffer_.substr(0, end);
    buffer_.erase(0, end);
    return out;
  }
  // Reads one response with a Content-Length body.
  std::string read_response() {
    std::string head = read_until("\r\n\r\n");
    const size_t cl = head.find("Content-Length: ");
    size_t length = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
    while (buffer_.size() < length) {
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
    length = std::min(length, buffer_.size());
    head += buffer_.substr(0, length);
    buffer_.erase(0, length);
    return head;
  }
  bool closed_by_peer() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// Emits `count` events, one per wake-up from a producer thread.
class TickSource : public ResponseSource {
 public:
  TickSource(std::function<void()> wake, int count, std::atomic<bool>* cancelled)
      : count_(count), cancelled_(cancelled) {
    producer_ = std::thread([this, wake = std::move(wake)] {
      for (int i = 0; i < count_ && !stop_; ++i) {
        std::this_thread::sleep_for(20ms);
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++ready_;
        }
        wake();
      }
    });
  }
  ~TickSource() override {
    stop_ = true;
    producer_.join();
  }
  bool streaming() const override { return true; }
  HttpResponse head() const override {
    HttpResponse h;
    h.content_type = "text/event-stream";
    return h;
  }
  bool poll(std::string& out) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (; sent_ < ready_; ++sent_) out += "data:" + std::to_string(sent_) + "\n\n";
    return sent_ == count_;
  }
  HttpResponse take_response() override { return {}; }
  void cancel() override {
    stop_ = true;
    *cancelled_ = true;
  }

 private:
  int count_;
  std::atomic<bool>* cancelled_;
  std::mutex mu_;
  int ready_ = 0, sent_ = 0;
  std::atomic<bool> stop_{false};
  std::thread producer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.max_body_bytes = 1000;
    o.error_response = [](const std::string& path, int status, const std::string& message) {
      HttpResponse r;
      r.status = status;
      r.body = "{\"path\":\"" + path + "\",\"message\":\"" + message + "\"}";
      return r;
    };
    server_ = std::make_unique<HttpServer>(o, [this](const HttpRequest& r, const RouteContext& ctx) -> RouteResult {
      if (r.path == "/ticks") return std::make_shared<TickSource>(ctx.wake, std::stoi(r.body), &cancelled_);
      HttpResponse resp;
      resp.body = r.method + " " + r.path + " q=" + r.query + " body=" + r.body + " ua=" + r.header("user-agent");
      resp.content_type = "text/plain";
      return resp;
    });
    ASSERT_TRUE(server_->start().is_ok());
  }
  void TearDown() override { server_->shutdown(2); }

  std::unique_ptr<HttpServer> server_;
  std::atomic<bool> cancelled_{false};
};

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());
  c.send("POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t/1\r\nContent-Length: 3\r\n\r\nabc");
  std::string r = c.read_response();
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("POST /echo q=x=1 body=abc ua=t/1"), std::string::npos) << r;
  c.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n");
  r = c.read_response();
  EXPECT_NE(r.find("GET /second q= body="), std::string::npos) << r;
  c.send("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  r = c.read_response();
  EXPECT_NE(r.find("GET /last"), std::string::npos) << r;
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(HttpServerTest, ExpectContinue) {
  Client c(server_->port());
  c.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_NE(c.read_until("\r\n\r\n").find("100 Continue"), std::string::npos);
  c.send("hi");
  EXPECT_NE(c.read_response().find("body=hi"), std::string::npos);
}

TEST_F(HttpServerTest, BodyOverTheLimitGets413) {
  Client c(server_->port());
  c.send("POST /generate HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x'));
  const std::string r = c.read_response();
  EXPECT_NE(r.find("HTTP/1.1 413"), std::string::npos) << r;
  EXPECT_NE(r.find("\"path\":\"/generate\""), std::string::npos) << r;
  EXPECT_NE(r.find("larger than the limit of 1000 bytes"), std::string::npos) << r;
}

TEST_F(HttpServerTest, MalformedRequestGets400) {
  Client c(server_->port());
  c.send("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(c.read_response().find("HTTP/1.1 400"), std::string::npos);
}

TEST_F(HttpServerTest, ChunkedEventStream) {
  Client c(server_->port());
  c.send("POST /ticks HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n5");
  const std::string all = c.read_until("0\r\n\r\n");
  EXPECT_NE(all.find("Transfer-Encoding: chunked"), std::string::npos) << all;
  EXPECT_NE(all.find("Content-Type: text/event-stream"), std::string::npos) << all;
  for (int i = 0; i < 5; ++i) EXPECT_NE(all.find("data:" + std::to_string(i) + "\n\n"), std::string::npos) << all;
  EXPECT_FALSE(cancelled_);
  // The connection stays usable after the stream.
  c.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(c.read_response().find("GET /after"), std::string::npos);
}

TEST_F(HttpServerTest, ClientHangUpCancelsTheSource) {
  {
    Client c(server_->port());
    c.send("POST /ticks HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n200");
    c.read_until("data:1\n\n");
  }  // closes the socket mid-stream
  for (int i = 0; i < 200 && !cancelled_; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(cancelled_) << "the source was not cancelled after the client went away";
  for (int i = 0; i < 200 && server_->connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(HttpServerTest, ShutdownClosesIdleConnections) {
  Client c(server_->port());
  c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
  c.read_response();
  const auto t0 = std::chrono::steady_clock::now();
  server_->shutdown(5);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "an idle keep-alive connection held up shutdown";
  EXPECT_TRUE(c.closed_by_peer());
}

}  // namespace
}  // namespace ls::server
