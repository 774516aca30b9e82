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

}  // namespace ls::cuda
