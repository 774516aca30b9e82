// gather_rows.h: launcher of the logits-row gather (gather_rows.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// out[i] = src[rows[i]] for rows of `row_bytes` bytes (a multiple of 2), strides in bytes.
cudaError_t launch_gather_rows(const int32_t* rows, int64_t num_rows, const void* src, int64_t src_stride,
                               int64_t src_rows, void* out, int64_t out_stride, int64_t row_bytes,
                               Stream stream);

}  // namespace ls::cuda
