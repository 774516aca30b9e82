// request_stream.h: RequestStream, the one-way channel from the engine thread to the reader of one request (an
// HTTP connection, or the CLI). The engine pushes updates (coalescing into the pending one, so it never waits
// on a slow reader); the reader takes them. A reader that goes away calls cancel(); the engine sees it at its
// next step, aborts the request and frees its KV blocks. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "engine/request.h"

namespace ls {

class RequestStream {
 public:
  explicit RequestStream(uint64_t id) : id_(id) {}
  uint64_t id() const { return id_; }

  // ---- reader side ----
  // Called (from the engine thread, without locks held) whenever an update becomes available; it must not
  // block (e.g. post to an executor). Set it before the request is submitted, or call take() after setting.
  void set_notify(std::function<void()> notify);
  // The pending update, if any (non-blocking). After the finished update, nothing more arrives.
  std::optional<RequestUpdate> take();
  // Blocks until an update is available (for readers without an event loop, such as the CLI).
  RequestUpdate wait();
  // The reader is gone: the engine aborts the request at its next step.
  void cancel();
  bool cancelled() const;

  // ---- engine side ----
  void push(RequestUpdate update);

 private:
  const uint64_t id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<RequestUpdate> pending_;
  std::function<void()> notify_;
  bool cancelled_ = false;
};

}  // namespace ls
