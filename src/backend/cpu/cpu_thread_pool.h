// cpu_thread_pool.h: CpuThreadPool, the CPU backend's worker threads. An op hands its work to threads that
// already exist and are usually still spinning from the previous op, so a parallel op costs a cache-line
// hand-off, not a fork/join of OS threads. Work is taken in chunks from a shared counter by the calling
// thread and whichever workers are awake; the call returns once every chunk is done and no worker is inside
// one, so a worker that lost its core to another process (a compiler on a shared machine) never holds up an
// op it has not joined. After a short spin (spin_us) an idle worker sleeps on the job counter
// (std::atomic::wait), so an idle server leaves the cores to other processes.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace ls {

class CpuThreadPool {
 public:
  // num_threads - 1 workers are started; the calling thread is the other one.
  explicit CpuThreadPool(int num_threads, int spin_us = 200);
  ~CpuThreadPool();
  CpuThreadPool(const CpuThreadPool&) = delete;
  CpuThreadPool& operator=(const CpuThreadPool&) = delete;

  int size() const { return num_threads_; }

  // Calls fn(begin, end) for consecutive chunks of `chunk` items (the last one shorter) covering [0, n), on the
  // calling thread and the workers that are free, and returns when all chunks are done. Chunks run in no fixed
  // order or thread, so fn's results must not depend on either. Not reentrant: fn must not call the pool.
  template <class F>
  void parallel_for(int64_t n, int64_t chunk, F&& fn) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(chunk, 1);
    if (num_threads_ == 1 || n <= chunk) {
      fn(int64_t{0}, n);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    run([](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
        const_cast<void*>(static_cast<const void*>(&fn)), n, chunk);
  }

 private:
  using ChunkFn = void (*)(void*, int64_t, int64_t);
  static constexpr uint32_t kOpen = 1u << 31;  // state_: the job takes participants; low bits count them

  void run(ChunkFn fn, void* ctx, int64_t n, int64_t chunk);
  void take_chunks();
  void worker_main();

  int num_threads_;
  int spin_us_;
  std::vector<std::thread> workers_;
  // The current job, written before state_ opens it.
  ChunkFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1;
  alignas(64) std::atomic<int64_t> next_{0};
  alignas(64) std::atomic<uint32_t> state_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace ls
