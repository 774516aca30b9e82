// lora.h: launchers of the multi-LoRA op (lora.cu): per segment of tokens sharing an adapter slot, shrink
// t = x A^T at the slot's real rank, then expand y += t B^T. Slot -1 and rank 0 are skipped.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

struct LoraArgs {
  // The batch's segments (device) and their count (host).
  const int32_t* seg_start = nullptr;  // [num_segments + 1]
  const int32_t* seg_slot = nullptr;   // [num_segments]
  int32_t num_segments = 0;
  int32_t num_tokens = 0;
  // The module's slot tables (device): A [rank, in_dim] and B [out_dim, rank] bf16 per slot.
  const void* const* a = nullptr;
  const void* const* b = nullptr;
  const int32_t* ranks = nullptr;
  int32_t num_slots = 0;
  int32_t max_rank = 0;                // host: the largest rank of any slot
  int64_t in_dim = 0, out_dim = 0;
  const void* x = nullptr;             // [num_tokens, in_dim] bf16
  int64_t x_ld = 0;
  void* y = nullptr;                   // [num_tokens, out_dim] bf16, accumulated into
  int64_t y_ld = 0;
};

// shrunk: float32 scratch of num_tokens * max_rank values.
cudaError_t launch_lora(const LoraArgs& args, float* shrunk, Stream stream);

}  // namespace ls::cuda
