// cpu_thread_pool.cpp: the spin-then-sleep workers of CpuThreadPool. A job is published by bumping
// generation_; workers that are spinning see it within a cache-line transfer, sleeping ones are woken only when
// sleeping_ says there are any (the wake-up is a system call). All counters are sequentially consistent, so a
// worker that announces sleep before waiting either sees the new generation or is seen and notified.
#include "backend/cpu/cpu_thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LS_CPU_RELAX() _mm_pause()
#else
#define LS_CPU_RELAX() std::this_thread::yield()
#endif

namespace ls {

CpuThreadPool::CpuThreadPool(int num_threads, int spin_us)
    : num_threads_(num_threads > 0 ? num_threads : 1), spin_us_(spin_us) {
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { worker_main(t); });
}

CpuThreadPool::~CpuThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void CpuThreadPool::run_erased(JobFn fn, void* ctx) {
  if (num_threads_ == 1) {
    fn(ctx, 0);
    return;
  }
  job_fn_ = fn;
  job_ctx_ = ctx;
  pending_.store(num_threads_ - 1);
  generation_.fetch_add(1);
  if (sleeping_.load() > 0) generation_.notify_all();
  fn(ctx, 0);
  // Workers' shares are as short as ours; spin, but give the core away if one of them was descheduled.
  for (int spins = 0; pending_.load() != 0; ++spins) {
    if (spins < 4096) {
      LS_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

void CpuThreadPool::worker_main(int thread) {
  using Clock = std::chrono::steady_clock;
  uint64_t seen = 0;
  for (;;) {
    // Spin for spin_us_ microseconds (checking the clock every 64 pauses), then sleep until the next job.
    const auto deadline = Clock::now() + std::chrono::microseconds(spin_us_);
    uint64_t gen = generation_.load();
    for (int i = 0; gen == seen; ++i) {
      LS_CPU_RELAX();
      if ((i & 63) == 63 && Clock::now() > deadline) break;
      gen = generation_.load();
    }
    while (gen == seen) {
      sleeping_.fetch_add(1);
      generation_.wait(seen);
      sleeping_.fetch_sub(1);
      gen = generation_.load();
    }
    seen = gen;
    if (stop_.load()) return;
    job_fn_(job_ctx_, thread);
    pending_.fetch_sub(1);
  }
}

}  // namespace ls
