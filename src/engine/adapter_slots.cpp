// adapter_slots.cpp: slot assignment with reference counts and LRU reuse; loads begun beside the ops.
#include "engine/adapter_slots.h"

#include <algorithm>

namespace ls {

Result<std::unique_ptr<AdapterSlots>> AdapterSlots::create(Backend& backend, const ModelConfig& model,
                                                           int32_t num_slots, int64_t rank_capacity) {
  if (num_slots <= 0) return invalid_argument("max_loras must be positive");
  LS_ASSIGN_OR_RETURN(LoraSlots lora, LoraSlots::create(backend, model, num_slots, rank_capacity));
  auto s = std::make_unique<AdapterSlots>();
  s->lora_ = std::make_unique<LoraSlots>(std::move(lora));
  s->lora_->track_reads();  // the engine names every step's slots (reading, steps_done)
  s->slots_.resize(static_cast<size_t>(num_slots));
  return s;
}

AdapterSlots::~AdapterSlots() { lora_.reset(); }

int32_t AdapterSlots::find(uint64_t key) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].key == key) return static_cast<int32_t>(i);
  return -1;
}

bool AdapterSlots::can_acquire(const RegisteredAdapter& adapter) const {
  if (find(adapter.key) >= 0) return true;
  for (const Slot& s : slots_)
    if (s.refs == 0 && !s.loading) return true;
  return false;
}

Result<int32_t> AdapterSlots::acquire(const RegisteredAdapter& adapter, double now) {
  int32_t slot = find(adapter.key);
  if (slot < 0) {
    // An empty slot, else the least recently used one nobody references and no copy still fills.
    for (size_t i = 0; i < slots_.size() && slot < 0; ++i)
      if (slots_[i].key == 0 && slots_[i].refs == 0) slot = static_cast<int32_t>(i);
    if (slot < 0) slot = lru_victim(-1, now);
    if (slot < 0) return -1;
    std::shared_ptr<const StagedAdapter> staged = adapter.staged;
    if (!staged) {  // a catalog without staging: stage here, on the engine thread
      LS_ASSIGN_OR_RETURN(StagedAdapter own, lora_->stage(adapter.weights));
      staged = std::make_shared<const StagedAdapter>(std::move(own));
    }
    Slot& s = slots_[slot];
    s.key = 0;
    // The copies go after the steps already queued when those may still read what they overwrite (LoraSlots);
    // until they are done no step names this slot (the scheduler admits its sequences once ready()).
    Status begun = lora_->begin_load(slot, *staged);
    // The rank rows are shared by all slots: when no free range fits, the least recently used unreferenced slots
    // give theirs up, one at a time, until one does.
    for (int32_t victim; begun.code() == ErrorCode::kResourceExhausted && (victim = lru_victim(slot, now)) >= 0;) {
      lora_->clear(victim);
      slots_[victim].key = 0;
      begun = lora_->begin_load(slot, *staged);
    }
    if (begun.code() == ErrorCode::kResourceExhausted) {
      if (std::max<int64_t>(staged->max_rank, 1) > lora_->rank_capacity())
        return invalid_argument("adapter '" + adapter.name + "' has rank " + std::to_string(staged->max_rank) +
                                ", more than the " + std::to_string(lora_->rank_capacity()) +
                                " LoRA rank rows of the device (raise --max-lora-rank or --max-loras)");
      return -1;  // the rows are held by running sequences' adapters: wait for them
    }
    LS_RETURN_IF_ERROR(begun);
    s.key = adapter.key;
    s.loading = std::move(staged);
    s.load_started = now;
    ++loads_;
  }
  ++slots_[slot].refs;
  slots_[slot].last_used = now;
  return slot;
}

int32_t AdapterSlots::lru_victim(int32_t except, double now) {
  int32_t victim = -1;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (static_cast<int32_t>(i) == except || s.key == 0 || s.refs != 0) continue;
    if (s.loading && !ready(static_cast<int32_t>(i), now)) continue;
    if (victim < 0 || s.last_used < slots_[victim].last_used) victim = static_cast<int32_t>(i);
  }
  return victim;
}

bool AdapterSlots::ready(int32_t slot, double now) {
  LS_CHECK(slot >= 0 && slot < num_slots()) << "adapter slot " << slot;
  Slot& s = slots_[slot];
  if (!s.loading) return s.key != 0;
  if (!lora_->is_ready(slot)) return false;
  s.loading.reset();  // the last reference may go: the catalog's reclaimer frees it, not this thread
  const double seconds = std::max(0.0, now - s.load_started);
  ++loads_done_;
  load_seconds_ += seconds;
  max_load_seconds_ = std::max(max_load_seconds_, seconds);
  return true;
}

bool AdapterSlots::poll(double now) {
  bool in_flight = false;
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].loading) in_flight |= !ready(static_cast<int32_t>(i), now);
  return in_flight;
}

void AdapterSlots::release(int32_t slot) {
  LS_CHECK(slot >= 0 && slot < num_slots() && slots_[slot].refs > 0) << "releasing adapter slot " << slot;
  --slots_[slot].refs;
}

int64_t AdapterSlots::free_rank_rows() const {
  int64_t held = 0;
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].refs > 0) held += lora_->rows(static_cast<int32_t>(i));
  return lora_->rank_capacity() - held;
}

int32_t AdapterSlots::free_slots() const {
  int32_t n = 0;
  for (const Slot& s : slots_) n += s.refs == 0;
  return n;
}

std::vector<uint64_t> AdapterSlots::resident_keys() const {
  std::vector<uint64_t> keys;
  for (const Slot& s : slots_) keys.push_back(s.key);
  return keys;
}

}  // namespace ls
