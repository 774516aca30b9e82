// slot_copy_order_test.cpp: when a slot load's copies wait for the steps already queued (LoraSlots' read
// tracking: rank rows or table entries a step not yet done may read => after the ops; rows no such step reads =>
// at once), as AdapterSlots' acquire makes the choice for the engine (a sequence that finished while its step runs
// still counts as read), and the scheduler's slot prefetch between steps (Scheduler::prefetch: loads begun for
// waiting sequences, nothing admitted, copy waits left to schedule()). CPU backend, the demo model's shapes.
#include <gtest/gtest.h>

#include <thread>

#include "engine/adapter_slots.h"
#include "engine/scheduler.h"

namespace ls {
namespace {

const std::string kDemoBase = std::string(LS_SOURCE_DIR) + "/models/demo/base";

const ModelConfig& config() {
  static const ModelConfig c = load_model_config(kDemoBase).value();
  return c;
}

Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

// An adapter of `rank` on every projection of every layer (the values do not matter here).
LoraAdapter adapter_of_rank(int64_t rank) {
  LoraAdapter a;
  a.max_rank = rank;
  a.layers.resize(static_cast<size_t>(config().num_layers));
  for (auto& layer : a.layers) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const ProjectionShape shape = projection_shape(config(), static_cast<LoraModule>(m));
      layer[m].rank = rank;
      layer[m].a.assign(static_cast<size_t>(rank * shape.in_dim), 0.01f);
      layer[m].b.assign(static_cast<size_t>(shape.out_dim * rank), 0.02f);
    }
  }
  return a;
}

// Waits for the slot's last load, and so for every copy queued before it (the copy queue is in order): the
// staged sources may go.
void settle(LoraSlots& slots, int32_t slot) {
  while (!slots.is_ready(slot)) std::this_thread::yield();
}

// Rank rows are taken first fit from offset 0, so which load takes which rows is known below.
TEST(SlotCopyOrder, UntrackedLoadsWaitForTheOps) {
  LoraSlots slots = LoraSlots::create(cpu(), config(), 2, 16).value();
  const StagedAdapter staged = slots.stage(adapter_of_rank(8)).value();
  ASSERT_TRUE(slots.begin_load(0, staged).is_ok());
  EXPECT_TRUE(slots.loaded_after_ops(0)) << "without read tracking every load must wait for the ops";
  settle(slots, 0);
}

TEST(SlotCopyOrder, RowsOrTableEntriesAStepMayReadWaitForIt) {
  LoraSlots slots = LoraSlots::create(cpu(), config(), 3, 24).value();
  slots.track_reads();
  const StagedAdapter eight = slots.stage(adapter_of_rank(8)).value();
  // Fresh rows [0, 8), a slot no step named: at once.
  ASSERT_TRUE(slots.begin_load(0, eight).is_ok());
  EXPECT_FALSE(slots.loaded_after_ops(0));
  ASSERT_TRUE(slots.load(1, adapter_of_rank(8)).is_ok());  // rows [8, 16)
  EXPECT_FALSE(slots.loaded_after_ops(1));
  // Step 1 names slot 0 and is not done; slot 0 is cleared while it runs (its sequence aborted).
  slots.note_read(0, 1);
  slots.clear(0);
  // Slot 2 takes rows [0, 8), which step 1 may still read: after the ops.
  ASSERT_TRUE(slots.begin_load(2, eight).is_ok());
  EXPECT_TRUE(slots.loaded_after_ops(2)) << "rows freed by a slot the running step names";
  // Slot 0 again, into rows [16, 24) no step reads, but its table entries step 1 may still read: after the ops.
  ASSERT_TRUE(slots.begin_load(0, eight).is_ok());
  EXPECT_TRUE(slots.loaded_after_ops(0)) << "table entries of a slot the running step names";
  // Slot 1's rows and entries are nobody's business but step 1's reads of slot 0: a reload of slot 1 goes at once
  // (it takes its own rows back, [8, 16)).
  ASSERT_TRUE(slots.begin_load(1, eight).is_ok());
  EXPECT_FALSE(slots.loaded_after_ops(1)) << "nothing the running step reads";
  // Step 1 done: the same loads go at once.
  slots.steps_done(1);
  ASSERT_TRUE(slots.begin_load(2, eight).is_ok());
  EXPECT_FALSE(slots.loaded_after_ops(2));
  ASSERT_TRUE(slots.begin_load(0, eight).is_ok());
  EXPECT_FALSE(slots.loaded_after_ops(0));
  settle(slots, 0);
}

TEST(SlotCopyOrder, MergedFreeRowsKeepTheirReader) {
  // Rows freed by a slot the running step names, merged with fresh rows into one free range: a load that takes
  // any of them waits; one that takes only the fresh part does not.
  LoraSlots slots = LoraSlots::create(cpu(), config(), 3, 32).value();
  slots.track_reads();
  const StagedAdapter eight = slots.stage(adapter_of_rank(8)).value(), sixteen = slots.stage(adapter_of_rank(16)).value();
  ASSERT_TRUE(slots.begin_load(0, eight).is_ok());   // [0, 8)
  ASSERT_TRUE(slots.begin_load(1, eight).is_ok());   // [8, 16)
  slots.note_read(1, 4);
  slots.steps_done(3);
  slots.clear(1);                                    // free: [8, 32), step 4 may read [8, 16)
  ASSERT_TRUE(slots.begin_load(2, sixteen).is_ok());  // [8, 24)
  EXPECT_TRUE(slots.loaded_after_ops(2));
  slots.clear(2);                                    // free [8, 32) again; slot 2 named by no step
  slots.clear(0);                                    // free [0, 32); slot 0 named by no step either
  ASSERT_TRUE(slots.begin_load(2, eight).is_ok());   // [0, 8): not what step 4 reads
  EXPECT_FALSE(slots.loaded_after_ops(2));
  ASSERT_TRUE(slots.begin_load(0, sixteen).is_ok());  // [8, 24): step 4's rows
  EXPECT_TRUE(slots.loaded_after_ops(0));
  slots.steps_done(4);
  slots.clear(0);
  ASSERT_TRUE(slots.begin_load(0, sixteen).is_ok());
  EXPECT_FALSE(slots.loaded_after_ops(0));
  settle(slots, 0);
}

// A registered adapter staged for the slots, under its own key.
std::shared_ptr<RegisteredAdapter> registered(const AdapterSlots& slots, uint64_t key, int64_t rank) {
  auto r = std::make_shared<RegisteredAdapter>();
  r->key = key;
  r->name = "a" + std::to_string(key);
  r->rank = static_cast<int32_t>(rank);
  r->staged = std::make_shared<const StagedAdapter>(slots.lora().stage(adapter_of_rank(rank)).value());
  return r;
}

void wait_ready(AdapterSlots& slots, int32_t slot) {
  while (!slots.ready(slot, 0.0)) std::this_thread::yield();
}

TEST(SlotCopyOrder, AnEvictedAdapterOfTheRunningStepIsOverwrittenAfterIt) {
  // One slot. Adapter 1 runs in step 1; its sequence finishes (aborted) while step 1 runs, so the slot is free
  // and adapter 2 evicts it: its copies wait for step 1. Once step 1 is done, adapter 3 evicting 2 does not wait.
  auto slots = AdapterSlots::create(cpu(), config(), 1, 16).value();
  auto a1 = registered(*slots, 1, 16), a2 = registered(*slots, 2, 16), a3 = registered(*slots, 3, 16);
  ASSERT_EQ(slots->acquire(*a1, 1.0).value(), 0);
  EXPECT_FALSE(slots->lora().loaded_after_ops(0)) << "a first load into fresh rows";
  wait_ready(*slots, 0);
  slots->reading(0, 1);  // step 1 launched with it
  slots->release(0);     // its sequence finished while step 1 runs
  ASSERT_EQ(slots->acquire(*a2, 2.0).value(), 0);
  EXPECT_TRUE(slots->lora().loaded_after_ops(0)) << "overwrote an adapter the running step reads at once";
  wait_ready(*slots, 0);
  slots->release(0);
  slots->steps_done(1);
  ASSERT_EQ(slots->acquire(*a3, 3.0).value(), 0);
  EXPECT_FALSE(slots->lora().loaded_after_ops(0)) << "waited for a step that was done";
  wait_ready(*slots, 0);
  slots->release(0);
}

TEST(SlotCopyOrder, PrefetchBetweenStepsBeginsLoadsAndAdmitsNothing) {
  // One seat, taken by a base sequence; an adapter's sequence arrives while the step runs. prefetch() takes its
  // slot (beginning the copy) and leaves it waiting; a sequence the last schedule found waiting for its copy keeps
  // that wait open for the next schedule() to count.
  auto slots = AdapterSlots::create(cpu(), config(), 4, 64).value();
  BlockPool pool(64, 16);
  SchedulerLimits limits;
  limits.max_num_seqs = 1;
  limits.max_num_batched_tokens = 64;
  Scheduler scheduler(limits, pool, slots.get());
  Sequence base, adapted, copying;
  base.id = 1;
  base.prompt = {1, 2, 3};
  adapted.id = 2;
  adapted.prompt = {4, 5};
  adapted.adapter = registered(*slots, 7, 16);
  copying.id = 3;
  copying.prompt = {6};
  copying.copy_wait_since = 0.5;
  scheduler.add(&base);
  const SchedulerOutput first = scheduler.schedule(1.0);
  ASSERT_EQ(first.scheduled.size(), 1u);
  EXPECT_EQ(slots->loads(), 0u);
  scheduler.add(&adapted);
  scheduler.add(&copying);
  EXPECT_TRUE(scheduler.prefetch(1.5).empty());
  EXPECT_EQ(slots->loads(), 1u) << "no slot load begun between the steps";
  EXPECT_GE(adapted.slot, 0);
  EXPECT_EQ(scheduler.running().size(), 1u);
  EXPECT_EQ(scheduler.waiting().size(), 2u);
  EXPECT_EQ(adapted.blocks, nullptr) << "prefetch reserved KV blocks";
  EXPECT_EQ(copying.copy_wait_since, 0.5) << "prefetch settled a copy wait";
  EXPECT_EQ(copying.copy_wait_seconds, 0.0);
  scheduler.remove(&adapted);
}

}  // namespace
}  // namespace ls
