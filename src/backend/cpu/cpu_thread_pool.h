// cpu_thread_pool.h: CpuThreadPool, the CPU backend's worker threads. Every op that runs in parallel hands
// its work to threads that already exist and are usually still spinning from the previous op, so a parallel
// op costs a cache-line hand-off, not a fork/join of OS threads. After a short spin (spin_us) an idle worker
// sleeps on the job counter (std::atomic::wait), so an idle server leaves the cores to other processes.
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
  // num_threads - 1 workers are started; the thread that calls run() is thread 0.
  explicit CpuThreadPool(int num_threads, int spin_us = 200);
  ~CpuThreadPool();
  CpuThreadPool(const CpuThreadPool&) = delete;
  CpuThreadPool& operator=(const CpuThreadPool&) = delete;

  int size() const { return num_threads_; }

  // Calls fn(t) for every t in [0, size()) concurrently (t = 0 on the calling thread) and returns when every
  // call has returned. Not reentrant: fn must not call run().
  template <class F>
  void run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run_erased([](void* ctx, int t) { (*static_cast<Fn*>(ctx))(t); }, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [0, n) into size() contiguous ranges of at least `grain` items (fewer ranges when n is small) and
  // calls fn(begin, end) for each non-empty range, in parallel.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    const int64_t parts = std::min<int64_t>(num_threads_, std::max<int64_t>(1, n / std::max<int64_t>(grain, 1)));
    if (parts <= 1) {
      fn(int64_t{0}, n);
      return;
    }
    run([&](int t) {
      if (t >= parts) return;
      const int64_t begin = n * t / parts, end = n * (t + 1) / parts;
      if (begin < end) fn(begin, end);
    });
  }

 private:
  using JobFn = void (*)(void*, int);
  void run_erased(JobFn fn, void* ctx);
  void worker_main(int thread);

  int num_threads_;
  int spin_us_;
  std::vector<std::thread> workers_;
  // The job: a new generation starts it; pending_ counts workers still running it.
  JobFn job_fn_ = nullptr;
  void* job_ctx_ = nullptr;
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace ls
