// scheduler.cpp: token-budget scheduling, admission, preemption by recompute.
#include "engine/scheduler.h"

#include <algorithm>

namespace ls {

void Scheduler::add(Sequence* seq) {
  auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq,
                             [](const Sequence* a, const Sequence* b) { return a->id < b->id; });
  waiting_.insert(at, seq);
}

void Scheduler::remove(Sequence* seq) {
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), seq), waiting_.end());
  seq->blocks.reset();
  if (seq->slot >= 0) {
    slots_->release(seq->slot);
    seq->slot = -1;
  }
}

void Scheduler::preempt(Sequence* victim, SchedulerOutput& out, int32_t& budget) {
  auto& s = out.scheduled;
  auto it = std::find_if(s.begin(), s.end(), [victim](const ScheduledSeq& x) { return x.seq == victim; });
  if (it != s.end()) {
    budget += it->num_tokens;
    s.erase(it);
  }
  remove(victim);
  victim->num_computed = 0;
  ++victim->preemptions;
  ++preemptions_;
  ++out.num_preempted;
  add(victim);
}

bool Scheduler::reserve_or_preempt(Sequence* seq, int32_t tokens, SchedulerOutput& out, int32_t& budget) {
  while (!seq->blocks->reserve(tokens).is_ok()) {
    Sequence* victim = running_.back();
    preempt(victim, out, budget);
    if (victim == seq) return false;
  }
  return true;
}

void Scheduler::admit_waiting(SchedulerOutput& out, int32_t& budget, double now) {
  bool slot_blocked = false;
  for (size_t i = 0; i < waiting_.size();) {
    Sequence* w = waiting_[i];
    if (static_cast<int32_t>(running_.size()) >= limits_.max_num_seqs || budget <= 0) return;
    if (w->adapter_pending()) {  // its adapter is still loading into host memory: others go ahead
      ++i;
      continue;
    }
    if (w->adapter && w->slot < 0) {
      const bool resident = slots_->resident(*w->adapter);
      if ((!resident && (slot_blocked || !slots_->can_acquire(*w->adapter))) || (resident && slot_blocked)) {
        slot_blocked |= !resident;
        ++i;
        continue;
      }
      // The slot is taken (and its copy begun) now; the sequence keeps it while the copy is in flight.
      auto slot = slots_->acquire(*w->adapter, now);
      if (!slot.is_ok()) {
        waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
        out.failed.emplace_back(w, slot.status());
        continue;
      }
      if (slot.value() < 0) {  // every slot referenced or still landing a copy: as can_acquire() false
        slot_blocked |= !resident;
        ++i;
        continue;
      }
      w->slot = slot.value();
    }
    if (w->slot >= 0 && !slots_->ready(w->slot, now)) {  // its adapter is still being copied in: others go ahead
      ++i;
      continue;
    }
    const int32_t n = std::min(w->num_pending(), budget);
    w->blocks = std::make_unique<BlockTable>(*pool_);
    if (!w->blocks->reserve(static_cast<int64_t>(w->num_computed) + n).is_ok()) {
      w->blocks.reset();
      return;  // new work waits for blocks; only running sequences preempt
    }
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    running_.push_back(w);
    if (w->times.scheduled == 0) w->times.scheduled = now;
    out.scheduled.push_back({w, n});
    budget -= n;
  }
}

SchedulerOutput Scheduler::schedule(double now) {
  SchedulerOutput out;
  int32_t budget = limits_.max_num_batched_tokens;
  // Decodes first: every running sequence whose prompt is in the cache computes its one new token.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence* seq = running_[i];
    if (!seq->prefill_done() || seq->num_pending() != 1 || budget <= 0) continue;
    if (!reserve_or_preempt(seq, seq->num_computed + 1, out, budget)) break;  // seq was the newest
    out.scheduled.push_back({seq, 1});
    --budget;
  }
  // Then chunks of running prefills (and of recomputations), oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    if (seq->prefill_done() && seq->num_pending() == 1) continue;
    const int32_t n = std::min(seq->num_pending(), budget);
    if (n <= 0) continue;
    if (!reserve_or_preempt(seq, seq->num_computed + n, out, budget)) break;
    out.scheduled.push_back({seq, n});
    budget -= n;
  }
  if (out.num_preempted == 0) admit_waiting(out, budget, now);
  return out;
}

}  // namespace ls
