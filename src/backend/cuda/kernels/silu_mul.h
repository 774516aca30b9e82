// silu_mul.h: launcher of the SiLU-mul activation (silu_mul.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// out = silu(gate_up[:, :inter]) * gate_up[:, inter:]
cudaError_t launch_silu_mul(const void* gate_up, int64_t gate_up_ld, void* out, int64_t out_ld, int64_t rows,
                            int64_t inter, Stream stream);

}  // namespace ls::cuda
