// cpu_copy_queue.h: CpuCopyQueue, the CPU backend's copy queue beside the ops (Backend::copy_beside). One
// worker thread runs queued batches of copies in order while the ops go on: an adapter load's copy into its
// slot (tens of MB for a Llama-3-8B-shaped rank-16 adapter) leaves the engine thread. CPU ops are synchronous,
// so every op enqueued before copy_beside has finished when it is called; later ops do not read what the
// copies write until copies_done says so (LoraSlots). The worker starts on the first batch.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/backend.h"

namespace ls {

class CpuCopyQueue {
 public:
  CpuCopyQueue() = default;
  ~CpuCopyQueue();  // finishes what is queued
  CpuCopyQueue(const CpuCopyQueue&) = delete;
  CpuCopyQueue& operator=(const CpuCopyQueue&) = delete;

  uint64_t enqueue(const Backend::HostCopy* copies, size_t n);
  bool done(uint64_t fence);
  void wait(uint64_t fence);

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;  // work queued, a batch done, or stopping
  std::deque<std::pair<uint64_t, std::vector<Backend::HostCopy>>> queue_;
  uint64_t last_ = 0, done_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace ls
