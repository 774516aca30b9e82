// forward_batch.h: ForwardBatch, the only input of a forward pass: several sequences at different stages (a
// prefill chunk, one decode token), each with its own KV blocks and adapter slot. pack_batch flattens it into
// the index arrays of a BatchMeta (host pointers into the PackedBatch).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/batch_meta.h"
#include "core/status.h"

namespace ls {

enum class LogitsWanted { kNone, kLast, kAll };

struct SequenceStep {
  std::vector<int32_t> tokens;       // tokens to compute this step (a prefill chunk or one decode token)
  int32_t num_cached = 0;            // tokens of this sequence already in the KV cache; tokens[0] is at this position
  std::vector<int32_t> block_table;  // KV blocks covering at least num_cached + tokens.size() positions
  int32_t lora_slot = -1;            // -1: base model
  LogitsWanted logits = LogitsWanted::kLast;
};

struct ForwardBatch {
  std::vector<SequenceStep> seqs;
};

struct PackedBatch {
  PackedBatch() = default;
  PackedBatch(PackedBatch&&) = default;
  PackedBatch& operator=(PackedBatch&&) = default;
  PackedBatch(const PackedBatch&) = delete;  // meta points into the vectors
  std::vector<int32_t> token_ids, positions, kv_slots, query_start, context_lens, block_tables, logit_rows;
  std::vector<int32_t> lora_seg_start, lora_seg_slot, token_lora_slot;
  std::vector<int32_t> seq_logit_begin;  // [num_seqs + 1]: sequence s's logits are rows [begin[s], begin[s+1])
  BatchMeta meta;                        // host pointers into the vectors above
};

// How a decode step is laid out for a recorded graph (model/decode_graphs.h): padded to a fixed number of
// sequences with fixed-width block tables, so its arrays have the sizes, hence the device addresses, that the
// graph recorded. Padding sequences hold one token 0 that writes no KV (slot -1), attends to nothing (context
// 0) and gets a logits row; LoRA segments are the runs of equal slots, padded with empty segments to one per
// row.
struct PackLayout {
  int32_t pad_to_seqs = 0;        // 0: no padding (eager steps)
  int32_t block_table_width = 0;  // blocks per table row (0: the longest table)
  int32_t max_context_len = 0;    // reported as the batch's max_context_len (0: the real maximum)
};

// Flattens and validates a batch: token ids within vocab_size, enough blocks for every position, block ids
// within num_blocks, lora slots within num_lora_slots (0 when no adapters are resident). With a layout, every
// sequence must be one decode token (the batch may then be empty: all padding).
Result<PackedBatch> pack_batch(const ForwardBatch& batch, int32_t block_size, int32_t num_blocks, int64_t vocab_size,
                               int32_t num_lora_slots, const PackLayout& layout = {});

}  // namespace ls
