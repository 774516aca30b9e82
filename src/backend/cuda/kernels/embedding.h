// embedding.h: launcher of the embedding gather (embedding.cu). Raw pointers and a stream in, cudaError_t out;
// leading dimensions in elements; 16-bit tensors are bf16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// out[t] = table[ids[t]] (rows of `cols` bf16); an id outside [0, vocab) gives a zero row.
cudaError_t launch_embedding(const int32_t* ids, int64_t num_tokens, const void* table, int64_t table_ld,
                             int64_t vocab, int64_t cols, void* out, int64_t out_ld, Stream stream);

}  // namespace ls::cuda
