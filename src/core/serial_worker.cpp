// serial_worker.cpp: the queue and thread of SerialWorker.
#include "core/serial_worker.h"

#include <utility>

namespace ls {

uint64_t SerialWorker::post(std::function<void()> task) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) {
    // No thread any more: run it here, after everything queued before it (close() drained the queue). It is done
    // when post returns, which fence 0 says.
    lock.unlock();
    task();
    return 0;
  }
  queue_.push_back(std::move(task));
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
  return ++posted_;
}

bool SerialWorker::done(uint64_t fence) {
  std::lock_guard<std::mutex> lock(mu_);
  return fence <= done_;
}

void SerialWorker::wait(uint64_t fence) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return fence <= done_; });
}

void SerialWorker::close() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();  // never from one of its own tasks: that would destroy the worker under its feet
}

void SerialWorker::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closed, nothing left
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    task = nullptr;  // what it holds is released here too, not under the lock
    lock.lock();
    ++done_;
    cv_.notify_all();
  }
}

}  // namespace ls
