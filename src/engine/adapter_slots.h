// adapter_slots.h: AdapterSlots, which registered adapter sits in which device adapter slot (lora/LoraSlots
// holds the weights). A running sequence holds a reference on its slot; a slot nobody references stays
// loaded (a later request for the same adapter reuses it) until it is the least recently used free slot and
// another adapter needs one. Slots are keyed by the registration (RegisteredAdapter::key), so an adapter
// registered again under the same name never reuses the old weights. Engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lora/adapter_catalog.h"
#include "lora/lora_slots.h"

namespace ls {

class AdapterSlots {
 public:
  static Result<std::unique_ptr<AdapterSlots>> create(Backend& backend, const ModelConfig& model, int32_t num_slots);

  int32_t num_slots() const { return static_cast<int32_t>(slots_.size()); }
  // The slot holding `adapter` with one more reference, loading it into the least recently used unreferenced
  // slot when it is not resident; -1 when every slot is referenced by running sequences.
  Result<int32_t> acquire(const RegisteredAdapter& adapter, double now);
  void release(int32_t slot);
  bool resident(const RegisteredAdapter& adapter) const { return find(adapter.key) >= 0; }
  // Whether acquire() would succeed without evicting a referenced slot.
  bool can_acquire(const RegisteredAdapter& adapter) const;
  // Registration keys of the resident adapters (0: empty slot).
  std::vector<uint64_t> resident_keys() const;
  const LoraTable* table() const { return lora_.get(); }
  int32_t free_slots() const;  // slots no running sequence references
  uint64_t loads() const { return loads_; }

 private:
  struct Slot {
    uint64_t key = 0;   // 0: empty
    int32_t refs = 0;
    double last_used = 0;
  };
  int32_t find(uint64_t key) const;
  std::unique_ptr<LoraSlots> lora_;
  std::vector<Slot> slots_;
  uint64_t loads_ = 0;
};

}  // namespace ls
