// lora_slots.cpp: the arenas, the rank-range allocator, staging, and the loads beside the ops.
#include "lora/lora_slots.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ls {

LoraSlots::LoraSlots(Backend& backend, const ModelConfig& model, int32_t num_slots, int64_t rank_capacity)
    : backend_(&backend), model_(model), num_slots_(num_slots), rank_capacity_(rank_capacity),
      elem_(dtype_size(backend.compute_dtype())), slots_(static_cast<size_t>(num_slots)),
      max_ranks_(static_cast<size_t>(model.num_layers * kNumLoraModules), 0) {}

LoraSlots::~LoraSlots() {
  if (last_fence_) backend_->wait_copies(last_fence_);
}

Result<LoraSlots> LoraSlots::create(Backend& backend, const ModelConfig& model, int32_t num_slots,
                                    int64_t rank_capacity) {
  if (num_slots <= 0) return invalid_argument("the number of LoRA slots must be positive");
  if (rank_capacity < 0) return invalid_argument("the LoRA rank capacity must not be negative");
  if (rank_capacity == 0) rank_capacity = static_cast<int64_t>(num_slots) * kLoraMaxRank;
  LoraSlots s(backend, model, num_slots, rank_capacity);
  const size_t tables = s.max_ranks_.size(), entries = tables * static_cast<size_t>(num_slots);
  for (int64_t l = 0; l < model.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const ProjectionShape shape = projection_shape(model, static_cast<LoraModule>(m));
      const size_t row_bytes = static_cast<size_t>(shape.in_dim + shape.out_dim) * s.elem_;
      LS_ASSIGN_OR_RETURN(Buffer arena, backend.allocate(static_cast<size_t>(rank_capacity) * row_bytes));
      s.arenas_.push_back(std::move(arena));
      s.bytes_per_rank_ += row_bytes;
    }
  }
  s.free_.push_back({0, rank_capacity});
  LS_ASSIGN_OR_RETURN(s.host_a_, backend.allocate_host(entries * sizeof(void*)));
  LS_ASSIGN_OR_RETURN(s.host_b_, backend.allocate_host(entries * sizeof(void*)));
  LS_ASSIGN_OR_RETURN(s.host_ranks_, backend.allocate_host(entries * sizeof(int32_t)));
  std::memset(s.host_a_.data(), 0, entries * sizeof(void*));
  std::memset(s.host_b_.data(), 0, entries * sizeof(void*));
  std::memset(s.host_ranks_.data(), 0, entries * sizeof(int32_t));
  LS_ASSIGN_OR_RETURN(s.device_ptrs_, backend.allocate(2 * entries * sizeof(void*)));
  LS_ASSIGN_OR_RETURN(s.device_ranks_, backend.allocate(entries * sizeof(int32_t)));
  backend.copy_to_device(s.device_ptrs_.data(), s.host_a_.data(), entries * sizeof(void*));
  backend.copy_to_device(static_cast<char*>(s.device_ptrs_.data()) + entries * sizeof(void*), s.host_b_.data(),
                         entries * sizeof(void*));
  backend.copy_to_device(s.device_ranks_.data(), s.host_ranks_.data(), entries * sizeof(int32_t));
  return s;
}

Result<LoraSlots::Range> LoraSlots::take_range(int64_t rows) {
  for (size_t i = 0; i < free_.size(); ++i) {
    if (free_[i].rows < rows) continue;
    const Range r{free_[i].offset, rows};
    free_[i].offset += rows;
    free_[i].rows -= rows;
    if (free_[i].rows == 0) free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
    return r;
  }
  int64_t total = 0, longest = 0;
  for (const Range& f : free_) {
    total += f.rows;
    longest = std::max(longest, f.rows);
  }
  return resource_exhausted("no free LoRA rank range of " + std::to_string(rows) + " rows (" + std::to_string(total) +
                            " free in all, the longest " + std::to_string(longest) + ", of " +
                            std::to_string(rank_capacity_) + "): clear a slot first");
}

void LoraSlots::free_range(Range r) {
  if (r.rows == 0) return;
  auto it = std::lower_bound(free_.begin(), free_.end(), r, [](const Range& a, const Range& b) { return a.offset < b.offset; });
  it = free_.insert(it, r);
  if (it + 1 != free_.end() && it->offset + it->rows == (it + 1)->offset) {  // merge with the next
    it->rows += (it + 1)->rows;
    free_.erase(it + 1);
  }
  if (it != free_.begin() && (it - 1)->offset + (it - 1)->rows == it->offset) {  // and with the previous
    (it - 1)->rows += it->rows;
    free_.erase(it);
  }
}

Result<StagedAdapter> LoraSlots::stage(const LoraAdapter& adapter) const {
  if (static_cast<int64_t>(adapter.layers.size()) != model_.num_layers)
    return invalid_argument("adapter has " + std::to_string(adapter.layers.size()) + " layers, the model " +
                            std::to_string(model_.num_layers));
  if (adapter.max_rank > kLoraMaxRank)
    return invalid_argument("adapter rank " + std::to_string(adapter.max_rank) + " is above the largest supported, " +
                            std::to_string(kLoraMaxRank));
  StagedAdapter staged;
  staged.max_rank = adapter.max_rank;
  staged.ranks.resize(adapter.layers.size());
  staged.offsets.resize(adapter.layers.size());
  size_t bytes = 0;
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const LoraModuleTensors& t = adapter.layers[l][m];
      staged.ranks[l][m] = static_cast<int32_t>(t.rank);
      staged.offsets[l][m] = bytes;
      bytes += (t.a.size() + t.b.size()) * elem_;
    }
  }
  LS_ASSIGN_OR_RETURN(staged.memory, backend_->allocate_host(std::max<size_t>(bytes, 1)));
  auto* base = static_cast<char*>(staged.memory.data());
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const LoraModuleTensors& t = adapter.layers[l][m];
      if (t.rank == 0) continue;
      char* dst = base + staged.offsets[l][m];
      const auto in_dim = static_cast<int64_t>(t.a.size()) / t.rank, out_dim = static_cast<int64_t>(t.b.size()) / t.rank;
      backend_->stage_lora(dst, dst + t.a.size() * elem_, t.a.data(), t.b.data(), t.rank, in_dim, out_dim);
    }
  }
  return staged;
}

std::vector<Backend::HostCopy> LoraSlots::publish(int32_t slot,
                                                  const std::vector<std::array<int32_t, kNumLoraModules>>& ranks,
                                                  int64_t offset) {
  auto* a = static_cast<const void**>(host_a_.data());
  auto* b = static_cast<const void**>(host_b_.data());
  auto* r = static_cast<int32_t*>(host_ranks_.data());
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const size_t t = table(l, m), i = t * num_slots_ + slot;
      const ProjectionShape shape = projection_shape(model_, static_cast<LoraModule>(m));
      const int32_t rank = ranks.empty() ? 0 : ranks[l][m];
      auto* arena = static_cast<char*>(arenas_[t].data());
      a[i] = rank ? arena + static_cast<size_t>(offset * shape.in_dim) * elem_ : nullptr;
      b[i] = rank ? arena + static_cast<size_t>((rank_capacity_ * shape.in_dim + offset * shape.out_dim)) * elem_
                  : nullptr;
      r[i] = rank;
    }
  }
  // Column `slot` of each [table][slot] array: one strided copy each.
  const size_t tables = max_ranks_.size(), entries = tables * num_slots_;
  auto column = [&](void* device, const void* host, size_t elem) {
    Backend::HostCopy c;
    c.dst = static_cast<char*>(device) + slot * elem;
    c.src = static_cast<const char*>(host) + slot * elem;
    c.dst_pitch = c.src_pitch = num_slots_ * elem;
    c.width = elem;
    c.rows = tables;
    return c;
  };
  auto* ptrs = static_cast<char*>(device_ptrs_.data());
  return {column(ptrs, a, sizeof(void*)), column(ptrs + entries * sizeof(void*), b, sizeof(void*)),
          column(device_ranks_.data(), r, sizeof(int32_t))};
}

void LoraSlots::update_max_ranks() {
  const auto* r = static_cast<const int32_t*>(host_ranks_.data());
  for (size_t t = 0; t < max_ranks_.size(); ++t)
    max_ranks_[t] = *std::max_element(r + t * num_slots_, r + (t + 1) * num_slots_);
}

Status LoraSlots::begin_load(int32_t slot, const StagedAdapter& staged) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  if (static_cast<int64_t>(staged.ranks.size()) != model_.num_layers)
    return invalid_argument("staged adapter is for another model");
  clear(slot);
  LS_ASSIGN_OR_RETURN(const Range range, take_range(std::max<int64_t>(staged.max_rank, 1)));
  std::vector<Backend::HostCopy> copies;
  const auto* src = static_cast<const char*>(staged.memory.data());
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const int64_t rank = staged.ranks[l][m];
      if (rank == 0) continue;
      const ProjectionShape shape = projection_shape(model_, static_cast<LoraModule>(m));
      auto* arena = static_cast<char*>(arenas_[table(l, m)].data());
      Backend::HostCopy a, b;
      a.dst = arena + static_cast<size_t>(range.offset * shape.in_dim) * elem_;
      a.src = src + staged.offsets[l][m];
      a.width = static_cast<size_t>(rank * shape.in_dim) * elem_;
      b.dst = arena + static_cast<size_t>(rank_capacity_ * shape.in_dim + range.offset * shape.out_dim) * elem_;
      b.src = static_cast<const char*>(a.src) + a.width;
      b.width = static_cast<size_t>(rank * shape.out_dim) * elem_;
      copies.push_back(a);
      copies.push_back(b);
    }
  }
  for (const Backend::HostCopy& c : publish(slot, staged.ranks, range.offset)) copies.push_back(c);
  update_max_ranks();
  Slot& s = slots_[slot];
  s.range = range;
  s.loaded = true;
  s.after_ops = read_by_running_step(slot, range);
  s.fence = last_fence_ = backend_->copy_beside(copies.data(), copies.size(),
                                                s.after_ops ? Backend::CopyAfter::kOps : Backend::CopyAfter::kCopies);
  return Status::ok();
}

bool LoraSlots::read_by_running_step(int32_t slot, Range rows) const {
  if (!tracking_ || slots_[slot].read > steps_done_) return true;
  for (const auto& [r, step] : read_rows_)
    if (step > steps_done_ && r.offset < rows.offset + rows.rows && rows.offset < r.offset + r.rows) return true;
  return false;
}

void LoraSlots::note_read(int32_t slot, uint64_t step) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  slots_[slot].read = std::max(slots_[slot].read, step);
}

void LoraSlots::steps_done(uint64_t step) {
  steps_done_ = std::max(steps_done_, step);
  read_rows_.erase(std::remove_if(read_rows_.begin(), read_rows_.end(),
                                  [this](const std::pair<Range, uint64_t>& r) { return r.second <= steps_done_; }),
                   read_rows_.end());
}

bool LoraSlots::is_ready(int32_t slot) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  return slots_[slot].loaded && backend_->copies_done(slots_[slot].fence);
}

bool LoraSlots::occupied(int32_t slot) const {
  if (slot < 0 || slot >= num_slots_ || !slots_[slot].loaded) return false;
  return backend_->copies_done(slots_[slot].fence);
}

Status LoraSlots::load(int32_t slot, const LoraAdapter& adapter) {
  LS_ASSIGN_OR_RETURN(StagedAdapter staged, stage(adapter));
  LS_RETURN_IF_ERROR(begin_load(slot, staged));
  backend_->wait_copies(slots_[slot].fence);
  return Status::ok();
}

Status LoraSlots::load_random(int32_t slot, int64_t rank, uint64_t seed) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  if (rank <= 0 || rank > kLoraMaxRank)
    return invalid_argument("dummy adapter rank must be in [1, " + std::to_string(kLoraMaxRank) + "]");
  clear(slot);
  LS_ASSIGN_OR_RETURN(const Range range, take_range(rank));
  std::vector<std::array<int32_t, kNumLoraModules>> ranks(static_cast<size_t>(model_.num_layers));
  for (int64_t l = 0; l < model_.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      ranks[l][m] = static_cast<int32_t>(rank);
      const ProjectionShape shape = projection_shape(model_, static_cast<LoraModule>(m));
      auto* arena = static_cast<char*>(arenas_[table(l, m)].data());
      // PEFT's scale of a kaiming-uniform A and a B of the same order: deltas a fraction of the base output.
      const float a_bound = 1.0f / std::sqrt(static_cast<float>(shape.in_dim));
      const float b_bound = 0.5f / std::sqrt(static_cast<float>(rank));
      const uint64_t s = seed * 1000003u + static_cast<uint64_t>(l * kNumLoraModules + m) * 2;
      backend_->fill_lora_uniform(arena + static_cast<size_t>(range.offset * shape.in_dim) * elem_,
                                  arena + static_cast<size_t>(rank_capacity_ * shape.in_dim + range.offset * shape.out_dim) * elem_,
                                  rank, shape.in_dim, shape.out_dim, s, a_bound, b_bound);
    }
  }
  const std::vector<Backend::HostCopy> copies = publish(slot, ranks, range.offset);
  update_max_ranks();
  Slot& st = slots_[slot];
  st.range = range;
  st.loaded = true;
  st.after_ops = true;  // the fills are ops
  st.fence = last_fence_ = backend_->copy_beside(copies.data(), copies.size(), Backend::CopyAfter::kOps);
  backend_->wait_copies(st.fence);
  return Status::ok();
}

void LoraSlots::clear(int32_t slot) {
  LS_CHECK(slot >= 0 && slot < num_slots_) << "slot out of range";
  Slot& s = slots_[slot];
  if (!s.loaded) return;
  free_range(s.range);
  if (s.read > steps_done_) read_rows_.emplace_back(s.range, s.read);
  const uint64_t read = s.read;
  s = Slot{};
  s.read = read;
  // Host mirror only: no step may name an empty slot (pack_batch and the engine check occupied()), so the device
  // entries may keep pointing into the freed range until the next load of this slot overwrites them.
  auto* r = static_cast<int32_t*>(host_ranks_.data());
  for (size_t t = 0; t < max_ranks_.size(); ++t) r[t * num_slots_ + slot] = 0;
  update_max_ranks();
}

LoraModuleWeights LoraSlots::module(int64_t layer, LoraModule m) const {
  const size_t t = table(layer, static_cast<int>(m));
  const size_t entries = max_ranks_.size() * num_slots_;
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
