// fill.h: launchers of the f32 -> bf16 conversion, the seeded uniform fill, and a read sweep (fill.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// dst[i] = bf16(src[i]) for n contiguous values.
cudaError_t launch_f32_to_bf16(const float* src, void* dst, int64_t n, Stream stream);

// t[r][c] = uniform_at(seed, r * cols + c, lo, hi) in bf16 (out_f32 false) or float32.
cudaError_t launch_fill_uniform(void* t, int64_t ld, int64_t rows, int64_t cols, bool out_f32, uint64_t seed,
                                float lo, float hi, Stream stream);

// Reads `bytes` (a multiple of 16, 16-byte aligned) and nothing else: a sweep larger than L2 leaves it holding
// clean lines of this buffer only, so the next kernel finds its operands cold (GEMM tuning).
cudaError_t launch_read_sweep(const void* p, int64_t bytes, Stream stream);

}  // namespace ls::cuda
