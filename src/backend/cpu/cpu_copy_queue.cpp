// cpu_copy_queue.cpp: the worker thread of the CPU backend's copy queue.
#include "backend/cpu/cpu_copy_queue.h"

#include <cstring>

namespace ls {

CpuCopyQueue::~CpuCopyQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

uint64_t CpuCopyQueue::enqueue(const Backend::HostCopy* copies, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.emplace_back(++last_, std::vector<Backend::HostCopy>(copies, copies + n));
  if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
  cv_.notify_all();
  return last_;
}

bool CpuCopyQueue::done(uint64_t fence) {
  std::lock_guard<std::mutex> lock(mu_);
  return fence <= done_;
}

void CpuCopyQueue::wait(uint64_t fence) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return fence <= done_; });
}

void CpuCopyQueue::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    auto [fence, copies] = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    for (const Backend::HostCopy& c : copies)
      for (size_t r = 0; r < c.rows; ++r)
        std::memcpy(static_cast<char*>(c.dst) + r * c.dst_pitch, static_cast<const char*>(c.src) + r * c.src_pitch,
                    c.width);
    lock.lock();
    done_ = fence;
    cv_.notify_all();
  }
}

}  // namespace ls
