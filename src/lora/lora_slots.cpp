// lora_slots.cpp: uploads adapters into slots and keeps the slot tables in backend memory current.
#include "lora/lora_slots.h"

#include <algorithm>

namespace ls {

LoraSlots::LoraSlots(Backend& backend, const ModelConfig& model, int32_t num_slots)
    : backend_(&backend), model_(model), num_slots_(num_slots), slot_memory_(static_cast<size_t>(num_slots)) {
  const size_t entries = static_cast<size_t>(model.num_layers * kNumLoraModules * num_slots);
  a_ptrs_.assign(entries, nullptr);
  b_ptrs_.assign(entries, nullptr);
  ranks_.assign(entries, 0);
  max_ranks_.assign(static_cast<size_t>(model.num_layers * kNumLoraModules), 0);
}

Result<LoraSlots> LoraSlots::create(Backend& backend, const ModelConfig& model, int32_t num_slots) {
  if (num_slots <= 0) return invalid_argument("the number of LoRA slots must be positive");
  LoraSlots slots(backend, model, num_slots);
  const size_t entries = slots.ranks_.size();
  LS_ASSIGN_OR_RETURN(slots.device_ptrs_, backend.allocate(2 * entries * sizeof(void*)));
  LS_ASSIGN_OR_RETURN(slots.device_ranks_, backend.allocate(entries * sizeof(int32_t)));
  slots.upload_tables();
  return slots;
}

Status LoraSlots::load(int32_t slot, const LoraAdapter& adapter) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  if (static_cast<int64_t>(adapter.layers.size()) != model_.num_layers)
    return invalid_argument("adapter has " + std::to_string(adapter.layers.size()) + " layers, the model " +
                            std::to_string(model_.num_layers));
  clear(slot);
  const size_t elem = dtype_size(backend_->compute_dtype());
  std::vector<Buffer> memory;
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const LoraModuleTensors& t = adapter.layers[l][m];
      if (t.rank == 0) continue;
      LS_ASSIGN_OR_RETURN(Buffer a, backend_->allocate(t.a.size() * elem));
      LS_ASSIGN_OR_RETURN(Buffer b, backend_->allocate(t.b.size() * elem));
      const auto in_dim = static_cast<int64_t>(t.a.size()) / t.rank, out_dim = static_cast<int64_t>(t.b.size()) / t.rank;
      backend_->upload_lora(a.data(), b.data(), t.a.data(), t.b.data(), t.rank, in_dim, out_dim);
      const size_t i = table_index(l, m) * num_slots_ + slot;
      a_ptrs_[i] = a.data();
      b_ptrs_[i] = b.data();
      ranks_[i] = static_cast<int32_t>(t.rank);
      memory.push_back(std::move(a));
      memory.push_back(std::move(b));
    }
  }
  slot_memory_[slot] = std::move(memory);
  upload_tables();
  return Status::ok();
}

void LoraSlots::clear(int32_t slot) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  for (size_t t = 0; t < max_ranks_.size(); ++t) {
    const size_t i = t * num_slots_ + slot;
    a_ptrs_[i] = b_ptrs_[i] = nullptr;
    ranks_[i] = 0;
  }
  slot_memory_[slot].clear();
  upload_tables();
}

void LoraSlots::upload_tables() {
  for (size_t t = 0; t < max_ranks_.size(); ++t) {
    const auto begin = ranks_.begin() + static_cast<std::ptrdiff_t>(t * num_slots_);
    max_ranks_[t] = *std::max_element(begin, begin + num_slots_);
  }
  const size_t entries = ranks_.size();
  backend_->copy_to_device(device_ptrs_.data(), a_ptrs_.data(), entries * sizeof(void*));
  backend_->copy_to_device(static_cast<char*>(device_ptrs_.data()) + entries * sizeof(void*), b_ptrs_.data(),
                           entries * sizeof(void*));
  backend_->copy_to_device(device_ranks_.data(), ranks_.data(), entries * sizeof(int32_t));
}

LoraModuleWeights LoraSlots::module(int64_t layer, LoraModule m) const {
  const size_t t = table_index(layer, static_cast<int>(m));
  const size_t entries = ranks_.size();
  const auto* ptrs = static_cast<const void* const*>(device_ptrs_.data());
  const ProjectionShape shape = projection_shape(model_, m);
  LoraModuleWeights w;
  w.a = ptrs + t * num_slots_;
  w.b = ptrs + entries + t * num_slots_;
  w.ranks = static_cast<const int32_t*>(device_ranks_.data()) + t * num_slots_;
  w.num_slots = num_slots_;
  w.max_rank = max_ranks_[t];
  w.in_dim = shape.in_dim;
  w.out_dim = shape.out_dim;
  return w;
}

}  // namespace ls
