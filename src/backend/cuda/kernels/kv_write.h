// kv_write.h: launcher of the paged KV write (kv_write.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/cuda/kernels/stream.h"

namespace ls::cuda {

// k_cache[slot] = k[t], v_cache[slot] = v[t] for slot = kv_slots[t] (rows of `width` bf16; slot < 0 skipped).
cudaError_t launch_kv_write(const int32_t* kv_slots, int64_t num_tokens, const void* k, int64_t k_ld, const void* v,
                            int64_t v_ld, int64_t width, void* k_cache, void* v_cache, int64_t cache_slots,
                            Stream stream);

}  // namespace ls::cuda
