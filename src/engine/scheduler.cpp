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

Scheduler::SlotTake Scheduler::take_slot(size_t i, bool& slot_blocked, SchedulerOutput& out, double now) {
  Sequence* w = waiting_[i];
  const bool resident = slots_->resident(*w->adapter);
  if ((!resident && (slot_blocked || !slots_->can_acquire(*w->adapter))) || (resident && slot_blocked)) {
    slot_blocked |= !resident;
    return SlotTake::kSkip;
  }
  // The slot is taken (and its copy begun) now; the sequence keeps it while the copy is in flight.
  auto slot = slots_->acquire(*w->adapter, now);
  if (!slot.is_ok()) {
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    out.failed.emplace_back(w, slot.status());
    return SlotTake::kFailed;
  }
  if (slot.value() < 0) {  // every slot referenced or still landing a copy: as can_acquire() false
    slot_blocked |= !resident;
    return SlotTake::kSkip;
  }
  w->slot = slot.value();
  return SlotTake::kHeld;
}

void Scheduler::settle_copy_wait(Sequence* w, double now) {
  if (w->copy_wait_since <= 0) return;
  w->copy_wait_seconds += now - w->copy_wait_since;
  w->copy_wait_since = 0;
}

void Scheduler::admit_waiting(SchedulerOutput& out, int32_t& budget, double now) {
  bool slot_blocked = false;
  for (size_t i = 0; i < waiting_.size();) {
    Sequence* w = waiting_[i];
    if (static_cast<int32_t>(running_.size()) >= limits_.max_num_seqs || budget <= 0)
      return prefetch_slots(i, slot_blocked, out, now);
    if (w->adapter_pending()) {  // its adapter is still loading into host memory: others go ahead
      ++i;
      continue;
    }
    settle_copy_wait(w, now);  // the time since the last step found it waiting for its copy alone
    if (w->adapter && w->slot < 0) {
      const SlotTake take = take_slot(i, slot_blocked, out, now);
      if (take == SlotTake::kFailed) continue;
      if (take == SlotTake::kSkip) {
        ++i;
        continue;
      }
    }
    const int32_t n = std::min(w->num_pending(), budget);
    if (w->slot >= 0 && !slots_->ready(w->slot, now)) {  // its adapter is still being copied in: others go ahead
      // A seat and the budget are free and it is next in line: when the KV blocks would be too, it waits for its
      // adapter's copy alone (what the copy exposes to its request), until the next step looks again.
      if (pool_->blocks_for_tokens(static_cast<int64_t>(w->num_computed) + n) <= pool_->num_free())
        w->copy_wait_since = now;
      ++i;
      continue;
    }
    w->blocks = std::make_unique<BlockTable>(*pool_);
    if (!w->blocks->reserve(static_cast<int64_t>(w->num_computed) + n).is_ok()) {
      w->blocks.reset();
      return prefetch_slots(i, slot_blocked, out, now);  // new work waits for blocks; only running ones preempt
    }
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    running_.push_back(w);
    if (w->times.scheduled == 0) w->times.scheduled = now;
    if (w->copy_wait_seconds > 0) {
      slot_waits_.observe(w->copy_wait_seconds);
      slot_wait_max_ = std::max(slot_wait_max_, w->copy_wait_seconds);
      w->copy_wait_seconds = 0;
    }
    out.scheduled.push_back({w, n});
    budget -= n;
  }
}

void Scheduler::prefetch_slots(size_t from, bool slot_blocked, SchedulerOutput& out, double now) {
  // No seat for them now: from here on they wait for one, not for their copies.
  for (size_t i = from; i < waiting_.size(); ++i) settle_copy_wait(waiting_[i], now);
  begin_loads_ahead(from, slot_blocked, out, now);
}

std::vector<std::pair<Sequence*, Status>> Scheduler::prefetch(double now) {
  SchedulerOutput out;
  begin_loads_ahead(0, false, out, now);
  return std::move(out.failed);
}

void Scheduler::begin_loads_ahead(size_t from, bool slot_blocked, SchedulerOutput& out, double now) {
  if (!slots_) return;
  // Slots referenced by waiting sequences alone: the loads begun ahead of a seat (and the resident adapters
  // kept for the sequences next in line).
  std::vector<char> by_running(static_cast<size_t>(slots_->num_slots()), 0), by_waiting(by_running);
  for (const Sequence* r : running_)
    if (r->slot >= 0) by_running[r->slot] = 1;
  int32_t held = 0;
  for (size_t i = 0; i < waiting_.size(); ++i) {
    Sequence* w = waiting_[i];
    if (w->slot >= 0 && !by_running[w->slot] && !by_waiting[w->slot]) {
      by_waiting[w->slot] = 1;
      ++held;
    }
  }
  // The sequences next in line, as many as one step may hold.
  const auto lookahead = static_cast<size_t>(limits_.max_num_seqs);
  for (size_t i = from, looked = 0; i < waiting_.size() && looked < lookahead; ++looked) {
    Sequence* w = waiting_[i];
    if (w->adapter_pending() || !w->adapter || w->slot >= 0) {
      ++i;
      continue;
    }
    // A slot taken ahead of a seat only while at least as many stay unreferenced as the waiting sequences hold
    // (a resident adapter's too, whose slot may be unreferenced): a sequence ahead whose adapter is still loading
    // into host memory, or a preempted one taking its slot back, still finds one.
    if (held + 1 > slots_->free_slots() - 1) return;
    const int32_t free_before = slots_->free_slots();
    const SlotTake take = take_slot(i, slot_blocked, out, now);
    if (take == SlotTake::kFailed) continue;  // erased: i is the next one
    held += slots_->free_slots() < free_before;
    ++i;
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
  else prefetch_slots(0, false, out, now);  // no admissions while preempting, but loads may begin
  return out;
}

}  // namespace ls
