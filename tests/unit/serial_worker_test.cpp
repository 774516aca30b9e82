// serial_worker_test.cpp: SerialWorker runs tasks in post order off the caller's thread, its fences say when, what
// a task holds is released on the worker, close() runs what is queued, and a task posted afterwards still runs.
#include "core/serial_worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace ls {
namespace {

TEST(SerialWorker, RunsInOrderOffTheCallersThreadAndFencesSayWhen) {
  SerialWorker w;
  std::vector<int> order;
  std::atomic<bool> release{false};
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  const uint64_t first = w.post([&] {
    ran_on = std::this_thread::get_id();
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    order.push_back(1);
  });
  const uint64_t second = w.post([&] { order.push_back(2); });
  EXPECT_LT(first, second);
  EXPECT_FALSE(w.done(first));
  EXPECT_FALSE(w.done(second));
  release = true;
  w.wait(second);
  EXPECT_TRUE(w.done(first));
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_NE(ran_on, caller);
}

TEST(SerialWorker, ReleasesWhatATaskHoldsOnTheWorker) {
  struct Probe {
    std::thread::id* freed_on;
    ~Probe() { *freed_on = std::this_thread::get_id(); }
  };
  std::thread::id freed_on;
  SerialWorker w;
  auto p = std::make_shared<Probe>(Probe{&freed_on});
  const uint64_t f = w.post([p = std::move(p)]() mutable { p.reset(); });
  w.wait(f);
  EXPECT_NE(freed_on, std::thread::id{});
  EXPECT_NE(freed_on, std::this_thread::get_id());
}

TEST(SerialWorker, CloseRunsWhatIsQueuedAndLaterTasksRunOnTheCaller) {
  std::atomic<int> ran{0};
  SerialWorker w;
  for (int i = 0; i < 100; ++i)
    w.post([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ++ran;
    });
  w.close();
  EXPECT_EQ(ran.load(), 100);
  std::thread::id ran_on;
  EXPECT_EQ(w.post([&] { ran_on = std::this_thread::get_id(); }), 0u);
  EXPECT_TRUE(w.done(0));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  w.close();  // twice is fine
}

TEST(SerialWorker, ManyPostersOneOrderPerPoster) {
  SerialWorker w;
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::vector<int>> seen(kThreads);
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t)
    posters.emplace_back([&, t] {
      uint64_t last = 0;
      for (int i = 0; i < kEach; ++i) last = w.post([&seen, t, i] { seen[t].push_back(i); });
      w.wait(last);
    });
  for (std::thread& t : posters) t.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kEach));
    for (int i = 0; i < kEach; ++i) EXPECT_EQ(seen[t][i], i);
  }
}

}  // namespace
}  // namespace ls
