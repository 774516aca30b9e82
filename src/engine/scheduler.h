// scheduler.h: Scheduler, continuous batching under a per-step token budget (vLLM v1 style: a step is tokens
// to compute, whether prefill chunks or decode tokens). Each step: every running sequence that decodes gets its
// one token, then running prefills get chunks of what budget remains, then waiting sequences are admitted in
// arrival order while sequences, budget, KV blocks and adapter slots allow. When a running sequence needs a
// KV block and none is free, the newest running sequence is preempted: its blocks are freed and it waits to
// be recomputed (prompt and output so far, then it continues; its draws are keyed by (seed, step), so the
// tokens it produces do not change).
//
// Fairness across adapters: when a waiting sequence cannot get an adapter slot (all referenced by running
// sequences), later arrivals for adapters that are resident are not admitted either until it has one, so the
// slots drain and a rare adapter is served after at most the running requests' remaining time; requests for
// the base model need no slot and keep flowing. A sequence whose adapter is still loading into host memory is
// passed over until the load is done. A sequence that gets a slot whose copy to the device is still in flight
// (AdapterSlots::acquire begins it) holds the slot but is not admitted, and reserves no KV blocks, until the
// slot is ready; the sequences behind it go ahead in the same step (a loading slot does not block them).
//
// Slot prefetch: when the seats (max_num_seqs), the token budget or the KV blocks are spent, or the step
// preempts, the walk goes on over the next max_num_seqs waiting sequences in the same order and under the same
// fairness rules, taking slots (and beginning their copies) for those whose adapter is in host memory, so the
// adapter is usually on the device by the time a seat frees. Bounded: a slot is taken ahead of a seat only
// while at least as many slots stay unreferenced as waiting sequences hold, and acquire() never evicts a
// referenced slot, so running sequences and the sequences ahead keep theirs. The engine also runs this walk from
// the head of the queue while a step is in flight (prefetch()), for requests that arrived or whose adapter reached
// host memory meanwhile, so their copies can land before the next step is built.
// Exposure: the time a sequence was next in line with a seat, budget and KV blocks free and waited only for its
// slot's copy (summed per sequence from each step that found it so to the next step that looked again,
// observed when it is admitted): slot_waits().
// Engine thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "engine/adapter_slots.h"
#include "engine/metrics.h"
#include "engine/sequence.h"
#include "kv/block_pool.h"

namespace ls {

struct SchedulerLimits {
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
};

struct ScheduledSeq {
  Sequence* seq;
  int32_t num_tokens;  // tokens to compute this step, starting at seq->num_computed
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;
  std::vector<std::pair<Sequence*, Status>> failed;  // could not be admitted (e.g. its adapter failed to load)
  int32_t num_preempted = 0;
};

class Scheduler {
 public:
  Scheduler(SchedulerLimits limits, BlockPool& pool, AdapterSlots* slots) : limits_(limits), pool_(&pool), slots_(slots) {}

  void add(Sequence* seq);     // joins the waiting queue (arrival order = id order)
  void remove(Sequence* seq);  // finished or aborted: leaves its queue, frees its blocks and slot
  SchedulerOutput schedule(double now);
  // The slot prefetch walk (see above) from the head of the waiting queue, between steps' schedules: admits
  // nothing and leaves the exposure to the next schedule(). Returns the sequences that failed (as out.failed).
  std::vector<std::pair<Sequence*, Status>> prefetch(double now);

  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  uint64_t preemptions() const { return preemptions_; }
  // Sequences admitted after waiting for their adapter's copy alone, with those seconds (see above); the longest.
  const Histogram& slot_waits() const { return slot_waits_; }
  double slot_wait_max_seconds() const { return slot_wait_max_; }

 private:
  // Grows seq's blocks to hold `tokens` tokens, preempting the newest running sequences while none are free.
  // False when seq itself had to be preempted.
  bool reserve_or_preempt(Sequence* seq, int32_t tokens, SchedulerOutput& out, int32_t& budget);
  void preempt(Sequence* victim, SchedulerOutput& out, int32_t& budget);
  void admit_waiting(SchedulerOutput& out, int32_t& budget, double now);
  // No seat for the waiting sequences from position `from` on this step: their copy waits are settled, and slot
  // loads are begun ahead of a seat for them (begin_loads_ahead).
  void prefetch_slots(size_t from, bool slot_blocked, SchedulerOutput& out, double now);
  void begin_loads_ahead(size_t from, bool slot_blocked, SchedulerOutput& out, double now);
  // waiting_[i] takes its adapter's slot under the fairness rules: kSkip leaves it waiting (slot_blocked set when
  // its adapter could get no slot), kFailed has erased it into out.failed.
  enum class SlotTake { kHeld, kSkip, kFailed };
  SlotTake take_slot(size_t i, bool& slot_blocked, SchedulerOutput& out, double now);
  // Adds the time since a step last found w waiting for its copy alone to w's exposure.
  static void settle_copy_wait(Sequence* w, double now);

  SchedulerLimits limits_;
  BlockPool* pool_;
  AdapterSlots* slots_;
  std::vector<Sequence*> running_;  // admission order
  std::deque<Sequence*> waiting_;   // arrival order
  uint64_t preemptions_ = 0;
  Histogram slot_waits_{adapter_slot_wait_buckets()};
  double slot_wait_max_ = 0;
};

}  // namespace ls
