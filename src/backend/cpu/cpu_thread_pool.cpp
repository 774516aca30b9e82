// cpu_thread_pool.cpp: the chunk counter and the spin-then-sleep workers of CpuThreadPool. The caller writes
// the job, opens state_ and bumps generation_; a worker that sees the new generation joins by incrementing
// state_'s participant count while the job is open (one compare-and-swap, so it cannot join a closed job),
// takes chunks until none are left and leaves. The caller takes chunks too, then closes the job and waits
// only for participants still inside a chunk. A late worker that joins the next job instead only takes that
// job's chunks, which is harmless. All atomics are sequentially consistent; sleeping_ tells the caller
// whether a wake-up system call is needed at all.
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
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this] { worker_main(); });
}

CpuThreadPool::~CpuThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void CpuThreadPool::take_chunks() {
  for (int64_t b = next_.fetch_add(job_chunk_); b < job_n_; b = next_.fetch_add(job_chunk_))
    job_fn_(job_ctx_, b, std::min(job_n_, b + job_chunk_));
}

void CpuThreadPool::run(ChunkFn fn, void* ctx, int64_t n, int64_t chunk) {
  job_fn_ = fn;
  job_ctx_ = ctx;
  job_n_ = n;
  job_chunk_ = chunk;
  next_.store(0);
  state_.store(kOpen);
  generation_.fetch_add(1);
  if (sleeping_.load() > 0) generation_.notify_all();
  take_chunks();
  state_.fetch_and(~kOpen);
  // Participants finish the chunk they hold; spin, but give the core away if one of them was descheduled.
  for (int spins = 0; state_.load() != 0; ++spins) {
    if (spins < 4096) {
      LS_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

void CpuThreadPool::worker_main() {
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
    uint32_t s = state_.load();
    while ((s & kOpen) && !state_.compare_exchange_weak(s, s + 1)) {
    }
    if (!(s & kOpen)) continue;  // closed before we got here: the caller did our share
    take_chunks();
    state_.fetch_sub(1);
  }
}

}  // namespace ls
