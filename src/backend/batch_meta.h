// batch_meta.h: BatchMeta, the per-step index arrays of a forward batch as the backend's ops read them (device
// pointers on a GPU backend, host pointers on the CPU backend), plus the host-side scalars kernels are launched
// with. Built from a ForwardBatch (model/forward_batch.h) by Backend::upload_batch.
#pragma once

#include <cstdint>

namespace ls {

struct BatchMeta {
  // Tokens of all sequences of the step, concatenated sequence by sequence.
  int32_t num_tokens = 0;
  const int32_t* token_ids = nullptr;     // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens] position of each token in its sequence
  const int32_t* kv_slots = nullptr;      // [num_tokens] block * block_size + offset where its K/V go

  // Sequences: sequence s owns tokens [query_start[s], query_start[s+1]) and, after this step's KV write,
  // context_lens[s] cached positions, addressed through block_tables[s * max_blocks_per_seq + i].
  int32_t num_seqs = 0;
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs * max_blocks_per_seq]
  int32_t max_blocks_per_seq = 0;
  int32_t max_query_len = 0;              // host scalar
  int32_t max_context_len = 0;            // host scalar

  // Rows (token indices) whose logits are wanted.
  int32_t num_logit_rows = 0;
  const int32_t* logit_rows = nullptr;    // [num_logit_rows]

  // LoRA: tokens grouped in segments of one adapter slot each (-1: base model only). Segment g covers tokens
  // [lora_seg_start[g], lora_seg_start[g+1]) and uses slot lora_seg_slot[g]; token_lora_slot is the same per token.
  int32_t num_lora_segments = 0;
  const int32_t* lora_seg_start = nullptr;   // [num_lora_segments + 1]
  const int32_t* lora_seg_slot = nullptr;    // [num_lora_segments]
  const int32_t* token_lora_slot = nullptr;  // [num_tokens]
  bool has_lora = false;                     // host scalar: any slot >= 0 in this step
  // Host scalar: every token with a slot has the same one, and every token without one is padding (a decode graph's
  // step padded to its bucket; pack_batch). Kernels may then read that slot's B once for all rows; they stay right
  // for any mix, only slower.
  bool lora_shared = false;
};

}  // namespace ls
