// lora_slots.h: LoraSlots, the adapters resident in backend memory, and how they get there.
//
// Layout. One arena per (layer, module), allocated once by create() and never resized, so serving allocates no
// backend memory: A rows [rank_capacity, in_dim], then B blocks [rank_capacity * out_dim], in compute dtype. An
// adapter in a slot owns one range of rank rows [offset, offset + R) in every arena, R its largest rank; module
// m of layer l keeps its A [r, in] at row `offset` of that module's A rows and its B [out, r] at element
// offset * out of its B blocks. So each adapter takes the rows its rank needs (rank 8: 8 rows, rank 128: 128;
// nothing is padded to a global maximum rank), and one offset, from one first-fit range allocator over rank
// rows, serves all num_layers * 7 arenas. The op still sees, per slot, a plain A [rank, in] and B [out, rank]
// (LoraModuleWeights' pointer tables, updated per slot). Costs of the shared offset: a module whose rank is below
// its adapter's largest (PEFT rank_pattern) leaves its tail rows unused; and a load fails with
// kResourceExhausted when no free range is long enough although the free total would be (the engine evicts more).
//
// Loads. stage() turns a host adapter into one host buffer in compute dtype, laid out module by module as the
// arenas take it (pinned on CUDA; do it once, when the adapter enters the host cache). begin_load(slot, staged)
// takes a rank range and queues the copies of every A and B and of the slot's table entries on the backend's copy
// queue beside the ops (Backend::copy_beside): the host does not wait, running steps keep running. is_ready(slot)
// polls them; a slot is occupied (usable by a step) from the first step built after is_ready said true, so
// adapter loads never stall the batch. load() stages, begins and waits (tools and tests). stage() only reads
// the adapter and writes host memory it allocates (Backend::allocate_host, stage_lora), so it may run on any
// thread (the adapter catalog's loaders call it); everything else is owned by the engine thread.
//
// Copy order. A load overwrites its rank rows (which may be rows other slots gave up) and the slot's table
// entries; a step queued before it may still read them (the range's previous owner, or the slot's previous
// adapter, for a request aborted while its step runs). So the copies start after the ops already enqueued
// (CopyAfter::kOps), unless the owner tracks which steps may read what (track_reads: the engine, through
// AdapterSlots): then they do only when a step not yet done may read what they overwrite, and otherwise start at
// once beside it (kCopies). A step reads only the slots its batch names (the lora op reads the table entries of
// its segments' slots and their rows below the rank), so each slot carries the last step that named it, and rows
// freed carry their slot's step until that step is done.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "lora/lora_adapter.h"

namespace ls {

// An adapter in host memory, in the backend's compute dtype, ready for LoraSlots::begin_load.
struct StagedAdapter {
  Buffer memory;                                                // Backend::allocate_host
  int64_t max_rank = 0;
  std::vector<std::array<int32_t, kNumLoraModules>> ranks;      // [layer][module], 0: not adapted
  std::vector<std::array<size_t, kNumLoraModules>> offsets;     // [layer][module]: byte offset of A; B follows
};

class LoraSlots final : public LoraTable {
 public:
  // rank_capacity: rank rows of every arena, shared by the resident adapters (0: num_slots * kLoraMaxRank).
  static Result<LoraSlots> create(Backend& backend, const ModelConfig& model, int32_t num_slots,
                                  int64_t rank_capacity = 0);
  LoraSlots(LoraSlots&&) = default;
  LoraSlots& operator=(LoraSlots&&) = delete;
  ~LoraSlots();  // waits for copies still writing into the arenas


  int32_t num_slots() const override { return num_slots_; }
  int64_t rank_capacity() const { return rank_capacity_; }
  // Backend bytes of the arenas per rank row (all layers and modules): what one rank of one adapter costs.
  size_t bytes_per_rank() const { return bytes_per_rank_; }

  // The adapter in host memory as begin_load copies it (kInvalidArgument for ranks above kLoraMaxRank or an
  // adapter of another model).
  Result<StagedAdapter> stage(const LoraAdapter& adapter) const;
  // Replaces what `slot` holds with `staged` through copies beside the ops; `staged` must stay alive and
  // unchanged until is_ready(slot). kResourceExhausted when no free rank range fits it.
  Status begin_load(int32_t slot, const StagedAdapter& staged);
  // Whether the slot's last begin_load has finished copying (true for an occupied slot, false for an empty one).
  bool is_ready(int32_t slot);
  // stage + begin_load + wait.
  Status load(int32_t slot, const LoraAdapter& adapter);
  // A dummy adapter of the given rank on every projection of every layer, filled with seeded random values on
  // the device (--load-format dummy's counterpart for adapters: benchmarks without adapter files). Waits.
  Status load_random(int32_t slot, int64_t rank, uint64_t seed);
  // Empties the slot and frees its rank range (the engine clears only slots no queued step uses).
  void clear(int32_t slot);

  // Read tracking (see the top). track_reads() turns it on: from then on the owner calls note_read(slot, step)
  // before queueing step `step` (numbered from 1, ascending) for each slot the step names, and steps_done(step)
  // once every step up to `step` has finished on the device.
  void track_reads() { tracking_ = true; }
  void note_read(int32_t slot, uint64_t step);
  void steps_done(uint64_t step);
  // Whether the slot's last load waited for the ops enqueued before it (CopyAfter::kOps).
  bool loaded_after_ops(int32_t slot) const { return slots_[slot].after_ops; }

  // Rank rows the slot's adapter holds (0: empty).
  int64_t rows(int32_t slot) const { return slots_[slot].loaded ? slots_[slot].range.rows : 0; }
  bool occupied(int32_t slot) const override;
  LoraModuleWeights module(int64_t layer, LoraModule m) const override;

 private:
  struct Range {
    int64_t offset, rows;
  };
  struct Slot {
    Range range{0, 0};
    bool loaded = false;     // holds an adapter (its copies may still run)
    uint64_t fence = 0;      // the copies of its last load
    bool after_ops = false;  // they waited for the ops
    uint64_t read = 0;       // the last step that named the slot (kept when it is cleared: its table entries)
  };
  // Whether a step not yet done may read the slot's table entries or any of `rows` (always, untracked).
  bool read_by_running_step(int32_t slot, Range rows) const;
  LoraSlots(Backend& backend, const ModelConfig& model, int32_t num_slots, int64_t rank_capacity);
  size_t table(int64_t layer, int m) const { return static_cast<size_t>(layer * kNumLoraModules + m); }
  Result<Range> take_range(int64_t rows);
  void free_range(Range r);
  // Fills the slot's table entries in the host mirrors and returns the copies that publish them.
  std::vector<Backend::HostCopy> publish(int32_t slot, const std::vector<std::array<int32_t, kNumLoraModules>>& ranks,
                                         int64_t offset);
  void update_max_ranks();

  Backend* backend_;
  ModelConfig model_;
  int32_t num_slots_;
  int64_t rank_capacity_;
  size_t elem_;
  size_t bytes_per_rank_ = 0;
  std::vector<Buffer> arenas_;          // [table]: A rows then B blocks
  std::vector<Range> free_;             // free rank ranges, sorted by offset, merged
  std::vector<Slot> slots_;
  // Slot tables: host mirrors (pinned where the backend pins) and their device copies, [table][slot] each.
  Buffer host_a_, host_b_, host_ranks_;
  Buffer device_ptrs_;                  // a pointers then b pointers
  Buffer device_ranks_;
  std::vector<int32_t> max_ranks_;      // [table]
  uint64_t last_fence_ = 0;             // of the last copies queued (fences are ordered)
  bool tracking_ = false;
  uint64_t steps_done_ = 0;
  std::vector<std::pair<Range, uint64_t>> read_rows_;  // freed rows and the step that may still read them
};

}  // namespace ls
