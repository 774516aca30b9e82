// silu_mul.h: launcher of the SiLU-mul activation (silu_mul.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// out = silu(gate_up[:, :inter]) * gate_up[:, inter:], with delta's deltas (null: none; sums, lora_delta_sums; columns
// of gate_up, 2 inter of them) added to gate_up's values as they are read, each rounded to bf16 as an expand into
// gate_up would.
cudaError_t launch_silu_mul(const void* gate_up, int64_t gate_up_ld, void* out, int64_t out_ld, int64_t rows,
                            int64_t inter, const LoraDelta* delta, Stream stream);

// launch_silu_mul with d's deltas from t and B (d.t: the shrink's sums in one split, LoraArgs::one_split; not
// sums), for a batch whose rows share one adapter: a block of 32 rows reads its first row's slot's B rows of its
// columns once and multiplies on the tensor cores (ranks up to 16). Rows of another slot are still right, only
// slower; rows without one get no delta. inter a multiple of 8, 1-2 modules (gate, up) whose columns begin and end
// on multiples of 8, even strides, 4-byte aligned rows.
bool silu_mul_shared_supported(const void* gate_up, int64_t gate_up_ld, const void* out, int64_t out_ld, int64_t rows,
                               int64_t inter, const LoraDelta& d);
cudaError_t launch_silu_mul_shared(const void* gate_up, int64_t gate_up_ld, void* out, int64_t out_ld, int64_t rows,
                                   int64_t inter, const LoraDelta& d, Stream stream);

}  // namespace ls::cuda
