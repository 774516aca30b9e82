// adapter_slots.cpp: slot assignment with reference counts and LRU reuse.
#include "engine/adapter_slots.h"

namespace ls {

Result<std::unique_ptr<AdapterSlots>> AdapterSlots::create(Backend& backend, const ModelConfig& model,
                                                           int32_t num_slots) {
  if (num_slots <= 0) return invalid_argument("max_loras must be positive");
  LS_ASSIGN_OR_RETURN(LoraSlots lora, LoraSlots::create(backend, model, num_slots));
  auto s = std::make_unique<AdapterSlots>();
  s->lora_ = std::make_unique<LoraSlots>(std::move(lora));
  s->slots_.resize(static_cast<size_t>(num_slots));
  return s;
}

int32_t AdapterSlots::find(uint64_t key) const {
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].key == key) return static_cast<int32_t>(i);
  return -1;
}

bool AdapterSlots::can_acquire(const RegisteredAdapter& adapter) const {
  if (find(adapter.key) >= 0) return true;
  for (const Slot& s : slots_)
    if (s.refs == 0) return true;
  return false;
}

Result<int32_t> AdapterSlots::acquire(const RegisteredAdapter& adapter, double now) {
  int32_t slot = find(adapter.key);
  if (slot < 0) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.refs != 0) continue;
      if (slot < 0 || s.key == 0 || (slots_[slot].key != 0 && s.last_used < slots_[slot].last_used))
        slot = static_cast<int32_t>(i);
      if (s.key == 0) break;
    }
    if (slot < 0) return -1;
    slots_[slot].key = 0;
    LS_RETURN_IF_ERROR(lora_->load(slot, adapter.weights));
    slots_[slot].key = adapter.key;
    ++loads_;
  }
  ++slots_[slot].refs;
  slots_[slot].last_used = now;
  return slot;
}

void AdapterSlots::release(int32_t slot) {
  LS_CHECK(slot >= 0 && slot < num_slots() && slots_[slot].refs > 0) << "releasing adapter slot " << slot;
  --slots_[slot].refs;
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
