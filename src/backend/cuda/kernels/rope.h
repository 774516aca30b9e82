// rope.h: launcher of rotary position embedding (rope.cu), optionally fused with the paged KV write of the
// rotated k and of v, and with the q/k/v projection's LoRA deltas added as the rows are read.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

struct RopeArgs {
  const int32_t* positions = nullptr;  // [num_tokens]
  int64_t num_tokens = 0;
  void* q = nullptr;                   // [T, q_heads * head_dim] bf16, rotated in place
  int64_t q_ld = 0, q_heads = 0;
  void* k = nullptr;                   // [T, kv_heads * head_dim] bf16, rotated in place
  int64_t k_ld = 0, kv_heads = 0;
  const float* inv_freq = nullptr;     // [head_dim / 2]
  int64_t head_dim = 0;
  // The fused KV write (kv_slots null: none): rows of kv_heads * head_dim at slot kv_slots[t] (< 0: skipped).
  const int32_t* kv_slots = nullptr;
  void* v = nullptr;                   // written only with deltas
  int64_t v_ld = 0;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  int64_t cache_slots = 0;             // num_blocks * block_size
  // The projection's LoRA deltas as sums (lora_delta_sums; delta.num_modules 0: none; needs the KV write), in the
  // columns of the output whose slices q, k and v are (their first columns there: q_col, k_col, v_col), added to
  // q, k and v before the rotation; q, k and v end as an expand into them, then RoPE and the KV write, would leave
  // them.
  LoraDelta delta;
  int64_t q_col = 0, k_col = 0, v_col = 0;
};

// Whether launch_rope takes these arguments with their deltas (the vectorized kernel's shapes and alignment).
bool rope_delta_supported(const RopeArgs& args);
cudaError_t launch_rope(const RopeArgs& args, Stream stream);

// launch_rope with the KV write and the deltas from t and B (delta.t: the shrink's sums in one split,
// LoraArgs::one_split; not sums) for a batch whose rows share one adapter: a block of 16 rows reads its first row's
// slot's B rows of a head's columns once (ranks up to 16). Rows of another slot are still right, only slower; rows
// without one get no delta. head_dim a multiple of 32 from 64 to 128, modules that cover whole heads.
bool rope_shared_supported(const RopeArgs& args);
cudaError_t launch_rope_shared(const RopeArgs& args, Stream stream);

}  // namespace ls::cuda
