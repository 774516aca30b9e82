// lora_slots.h: LoraSlots, the adapters resident in backend memory. A fixed number of slots; loading an adapter
// into a slot uploads its A and scaled B matrices (compute dtype, at their real ranks) and updates the per
// (layer, module) slot tables that the LoRA op indexes by slot. Owned by the engine thread.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "lora/lora_adapter.h"

namespace ls {

class LoraSlots final : public LoraTable {
 public:
  static Result<LoraSlots> create(Backend& backend, const ModelConfig& model, int32_t num_slots);

  int32_t num_slots() const override { return num_slots_; }
  // Uploads `adapter` into `slot`, replacing what was there.
  Status load(int32_t slot, const LoraAdapter& adapter);
  void clear(int32_t slot);
  bool occupied(int32_t slot) const override { return !slot_memory_[slot].empty(); }
  LoraModuleWeights module(int64_t layer, LoraModule m) const override;

 private:
  LoraSlots(Backend& backend, const ModelConfig& model, int32_t num_slots);
  size_t table_index(int64_t layer, int m) const { return static_cast<size_t>(layer * kNumLoraModules + m); }
  void upload_tables();

  Backend* backend_;
  ModelConfig model_;
  int32_t num_slots_;
  std::vector<std::vector<Buffer>> slot_memory_;  // [slot] -> buffers of that adapter
  // Host mirrors of the slot tables: [table][slot].
  std::vector<const void*> a_ptrs_, b_ptrs_;
  std::vector<int32_t> ranks_;
  std::vector<int32_t> max_ranks_;  // [table]
  Buffer device_ptrs_;   // a_ptrs then b_ptrs
  Buffer device_ranks_;
};

}  // namespace ls
