// forward_batch.cpp: flattening a ForwardBatch into BatchMeta arrays; LoRA segments are the runs of equal
// adapter slots in token order (the engine's batch builder orders sequences by slot so runs are long).
#include "model/forward_batch.h"

#include <algorithm>

namespace ls {
namespace {

Status validate_seq(const SequenceStep& s, size_t index, int32_t block_size, int32_t num_blocks, int64_t vocab_size,
                    int32_t num_lora_slots) {
  const std::string where = "sequence " + std::to_string(index) + ": ";
  if (s.tokens.empty()) return invalid_argument(where + "no tokens to compute");
  if (s.num_cached < 0) return invalid_argument(where + "negative cached count");
  for (int32_t t : s.tokens)
    if (t < 0 || t >= vocab_size)
      return invalid_argument(where + "token id " + std::to_string(t) + " outside the vocabulary [0, " +
                              std::to_string(vocab_size) + ")");
  const int64_t needed = (static_cast<int64_t>(s.num_cached) + static_cast<int64_t>(s.tokens.size()) + block_size - 1) / block_size;
  if (static_cast<int64_t>(s.block_table.size()) < needed) return invalid_argument(where + "block table too short");
  for (int32_t b : s.block_table)
    if (b < 0 || b >= num_blocks) return invalid_argument(where + "block id " + std::to_string(b) + " out of range");
  if (s.lora_slot < -1 || s.lora_slot >= num_lora_slots)
    return invalid_argument(where + "lora slot " + std::to_string(s.lora_slot) + " out of range");
  return Status::ok();
}

}  // namespace

namespace {

// Whether tokens [0, n) all use one adapter slot (n > 0, the slot >= 0).
bool shared_slot(const int32_t* slots, int32_t n) {
  return n > 0 && slots[0] >= 0 && std::all_of(slots, slots + n, [&](int32_t s) { return s == slots[0]; });
}

void set_meta(PackedBatch& p, int32_t num_seqs, int32_t max_blocks, int32_t max_query, int32_t max_context) {
  BatchMeta& m = p.meta;
  m = BatchMeta{};
  m.num_tokens = static_cast<int32_t>(p.token_ids.size());
  m.token_ids = p.token_ids.data();
  m.positions = p.positions.data();
  m.kv_slots = p.kv_slots.data();
  m.num_seqs = num_seqs;
  m.query_start = p.query_start.data();
  m.context_lens = p.context_lens.data();
  m.block_tables = p.block_tables.data();
  m.max_blocks_per_seq = max_blocks;
  m.max_query_len = max_query;
  m.max_context_len = max_context;
  m.num_logit_rows = static_cast<int32_t>(p.logit_rows.size());
  m.logit_rows = p.logit_rows.data();
  m.num_lora_segments = static_cast<int32_t>(p.lora_seg_slot.size());
  m.lora_seg_start = p.lora_seg_start.data();
  m.lora_seg_slot = p.lora_seg_slot.data();
  m.token_lora_slot = p.token_lora_slot.data();
  m.has_lora = std::any_of(p.token_lora_slot.begin(), p.token_lora_slot.end(), [](int32_t s) { return s >= 0; });
}

// A decode step padded to layout.pad_to_seqs sequences with fixed-width block tables.
Result<PackedBatch> pack_padded(const ForwardBatch& batch, int32_t block_size, const PackLayout& layout) {
  const int32_t n = static_cast<int32_t>(batch.seqs.size()), rows = layout.pad_to_seqs;
  if (n > rows) return invalid_argument("batch of " + std::to_string(n) + " sequences padded to " + std::to_string(rows));
  const int32_t width = layout.block_table_width;
  if (width <= 0) return invalid_argument("a padded layout needs a block table width");
  PackedBatch p;
  p.token_ids.assign(rows, 0);
  p.positions.assign(rows, 0);
  p.kv_slots.assign(rows, -1);
  p.context_lens.assign(rows, 0);
  p.block_tables.assign(static_cast<size_t>(rows) * width, 0);
  p.query_start.resize(rows + 1);
  p.seq_logit_begin.resize(rows + 1);
  p.logit_rows.resize(rows);
  p.lora_seg_start.resize(rows + 1);
  p.lora_seg_slot.assign(rows, -1);
  p.token_lora_slot.assign(rows, -1);
  for (int32_t i = 0; i <= rows; ++i) p.query_start[i] = p.seq_logit_begin[i] = i;
  for (int32_t i = 0; i < rows; ++i) p.logit_rows[i] = i;
  for (int32_t i = 0; i < n; ++i) {
    const SequenceStep& s = batch.seqs[i];
    if (s.tokens.size() != 1) return invalid_argument("a padded layout takes one decode token per sequence");
    const int32_t pos = s.num_cached;
    if (pos / block_size >= width) return invalid_argument("sequence longer than the layout's block table width");
    p.token_ids[i] = s.tokens[0];
    p.positions[i] = pos;
    p.kv_slots[i] = s.block_table[pos / block_size] * block_size + pos % block_size;
    p.context_lens[i] = pos + 1;
    p.token_lora_slot[i] = s.lora_slot;
    const size_t blocks = std::min<size_t>(s.block_table.size(), static_cast<size_t>(width));
    std::copy_n(s.block_table.begin(), blocks, p.block_tables.begin() + static_cast<size_t>(i) * width);
  }
  // LoRA segments: the runs of equal slots (so a batch sharing one adapter is one segment, read in tiles of many
  // rows), then empty segments up to `rows`, so the segment count the graph recorded never changes.
  int32_t segments = 0;
  for (int32_t t = 0; t < rows; ++t) {
    if (t > 0 && p.token_lora_slot[t] == p.token_lora_slot[t - 1]) continue;
    p.lora_seg_start[segments] = t;
    p.lora_seg_slot[segments++] = p.token_lora_slot[t];
  }
  for (int32_t g = segments; g <= rows; ++g) p.lora_seg_start[g] = rows;
  set_meta(p, rows, width, 1, layout.max_context_len > 0 ? layout.max_context_len : width * block_size);
  p.meta.lora_shared = shared_slot(p.token_lora_slot.data(), n);
  return p;
}

}  // namespace

Result<PackedBatch> pack_batch(const ForwardBatch& batch, int32_t block_size, int32_t num_blocks, int64_t vocab_size,
                               int32_t num_lora_slots, const PackLayout& layout) {
  for (size_t i = 0; i < batch.seqs.size(); ++i)
    LS_RETURN_IF_ERROR(validate_seq(batch.seqs[i], i, block_size, num_blocks, vocab_size, num_lora_slots));
  if (layout.pad_to_seqs > 0) return pack_padded(batch, block_size, layout);
  if (batch.seqs.empty()) return invalid_argument("empty batch");
  PackedBatch p;
  size_t max_blocks = 0;
  for (const SequenceStep& s : batch.seqs) max_blocks = std::max(max_blocks, s.block_table.size());
  if (layout.block_table_width > 0) {
    if (max_blocks > static_cast<size_t>(layout.block_table_width)) return invalid_argument("block table too wide");
    max_blocks = static_cast<size_t>(layout.block_table_width);
  }
  p.query_start.push_back(0);
  p.seq_logit_begin.push_back(0);
  p.block_tables.assign(batch.seqs.size() * max_blocks, 0);
  int32_t max_query = 0, max_context = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceStep& s = batch.seqs[i];
    const auto n = static_cast<int32_t>(s.tokens.size());
    const int32_t first_row = static_cast<int32_t>(p.token_ids.size());
    for (int32_t j = 0; j < n; ++j) {
      const int32_t pos = s.num_cached + j;
      p.token_ids.push_back(s.tokens[j]);
      p.positions.push_back(pos);
      p.kv_slots.push_back(s.block_table[pos / block_size] * block_size + pos % block_size);
      p.token_lora_slot.push_back(s.lora_slot);
      if (s.logits == LogitsWanted::kAll || (s.logits == LogitsWanted::kLast && j == n - 1))
        p.logit_rows.push_back(first_row + j);
    }
    p.query_start.push_back(static_cast<int32_t>(p.token_ids.size()));
    p.context_lens.push_back(s.num_cached + n);
    p.seq_logit_begin.push_back(static_cast<int32_t>(p.logit_rows.size()));
    std::copy(s.block_table.begin(), s.block_table.end(), p.block_tables.begin() + i * max_blocks);
    max_query = std::max(max_query, n);
    max_context = std::max(max_context, s.num_cached + n);
  }
  for (size_t t = 0; t < p.token_lora_slot.size(); ++t) {
    if (t == 0 || p.token_lora_slot[t] != p.token_lora_slot[t - 1]) {
      p.lora_seg_start.push_back(static_cast<int32_t>(t));
      p.lora_seg_slot.push_back(p.token_lora_slot[t]);
    }
  }
  p.lora_seg_start.push_back(static_cast<int32_t>(p.token_lora_slot.size()));
  set_meta(p, static_cast<int32_t>(batch.seqs.size()), static_cast<int32_t>(max_blocks), max_query,
           layout.max_context_len > 0 ? layout.max_context_len : max_context);
  p.meta.lora_shared = shared_slot(p.token_lora_slot.data(), static_cast<int32_t>(p.token_lora_slot.size()));
  return p;
}

}  // namespace ls
