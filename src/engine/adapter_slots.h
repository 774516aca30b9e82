// adapter_slots.h: AdapterSlots, which registered adapter sits in which device adapter slot (lora/LoraSlots
// holds the weights). A sequence holds a reference on its slot from acquire() until it finishes or is preempted;
// a slot nobody references stays loaded (a later request for the same adapter reuses it) until it is the least
// recently used free slot and another adapter needs one. Slots are keyed by the registration
// (RegisteredAdapter::key), so an adapter registered again under the same name never reuses the old weights.
//
// Loads overlap the steps: acquiring an adapter that is not resident begins its copy from the adapter's staged
// host copy (RegisteredAdapter::staged, made by the catalog's loader) beside the ops and returns at once; the
// slot is loading, and usable by a step only once ready() says so. The slot keeps the staged copy alive until
// then. The copy waits for the step in flight only when that step may read what it overwrites: the engine names
// each step's slots (reading) and the steps done (steps_done), and LoraSlots decides per load. Engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lora/adapter_catalog.h"
#include "lora/lora_slots.h"

namespace ls {

class AdapterSlots {
 public:
  // rank_capacity: LoRA rank rows shared by all slots (LoraSlots; 0: num_slots * kLoraMaxRank).
  static Result<std::unique_ptr<AdapterSlots>> create(Backend& backend, const ModelConfig& model, int32_t num_slots,
                                                      int64_t rank_capacity = 0);
  ~AdapterSlots();  // waits for copies in flight before their staged sources go

  int32_t num_slots() const { return static_cast<int32_t>(slots_.size()); }
  // The slot holding (or loading) `adapter` with one more reference, beginning its load into the least recently
  // used unreferenced slot when it is not resident (freeing more unreferenced slots' rank rows when its rank does
  // not fit); -1 when every slot, or the rank rows it needs, are held by referenced slots.
  Result<int32_t> acquire(const RegisteredAdapter& adapter, double now);
  void release(int32_t slot);
  // Whether the slot's adapter is copied in, so a step may use it (polls the copy; `now` dates the load).
  bool ready(int32_t slot, double now);
  // Notes the loads that landed (also those no sequence waits for any more); true while a copy is in flight.
  bool poll(double now);
  // Steps, numbered from 1: reading(slot, step) before step `step` is queued, for each slot it names (a sequence
  // that finishes while its step runs still counts); steps_done(step) once every step up to it has finished.
  void reading(int32_t slot, uint64_t step) { lora_->note_read(slot, step); }
  void steps_done(uint64_t step) { lora_->steps_done(step); }
  bool resident(const RegisteredAdapter& adapter) const { return find(adapter.key) >= 0; }
  // Whether acquire() would succeed without evicting a referenced slot (or one whose copy is in flight).
  bool can_acquire(const RegisteredAdapter& adapter) const;
  // Registration keys of the resident adapters, loading ones included (0: empty slot).
  std::vector<uint64_t> resident_keys() const;
  const LoraTable* table() const { return lora_.get(); }
  const LoraSlots& lora() const { return *lora_; }  // stage() may be called from any thread
  int32_t free_slots() const;  // slots no sequence references
  // Rank rows not held by referenced slots: free, or held by adapters a load may evict.
  int64_t free_rank_rows() const;
  int64_t rank_capacity() const { return lora_->rank_capacity(); }
  uint64_t loads() const { return loads_; }
  // Loads that became ready, and their seconds from acquire() to the ready() that saw them done (what the
  // request waited for its adapter to reach the device): summed and the largest.
  uint64_t loads_done() const { return loads_done_; }
  double load_seconds() const { return load_seconds_; }
  double max_load_seconds() const { return max_load_seconds_; }

 private:
  struct Slot {
    uint64_t key = 0;   // 0: empty
    int32_t refs = 0;
    double last_used = 0;
    std::shared_ptr<const StagedAdapter> loading;  // the copy's source while it is in flight
    double load_started = 0;
  };
  int32_t find(uint64_t key) const;
  // The least recently used loaded slot other than `except` that no sequence references and no copy fills (a
  // slot whose copy is in flight is not reused before it lands: its staged source must outlive the copy).
  int32_t lru_victim(int32_t except, double now);
  std::unique_ptr<LoraSlots> lora_;
  std::vector<Slot> slots_;
  uint64_t loads_ = 0, loads_done_ = 0;
  double load_seconds_ = 0, max_load_seconds_ = 0;
};

}  // namespace ls
