// serial_worker.h: SerialWorker, one thread that runs posted tasks in the order they were posted, off the
// caller's thread. post() returns a fence; done(fence) and wait(fence) say whether (until) that task and every
// task before it have run. The thread starts with the first task. close() (also the destructor) runs what is
// queued and joins; a task posted after close() runs on the caller's thread before post returns (fence 0, always
// done), so nothing posted is ever lost.
// Users: the CPU backend's copies beside the ops, the adapter catalog's frees of pinned staging memory.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace ls {

class SerialWorker {
 public:
  SerialWorker() = default;
  ~SerialWorker() { close(); }
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues task; it is destroyed on the worker thread too, right after it ran.
  uint64_t post(std::function<void()> task);
  bool done(uint64_t fence);
  void wait(uint64_t fence);
  void close();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;  // a task queued, a task done, or closing
  std::deque<std::function<void()>> queue_;
  uint64_t posted_ = 0, done_ = 0;
  bool closed_ = false;
  std::thread thread_;
};

}  // namespace ls
