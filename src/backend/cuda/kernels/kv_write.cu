// kv_write.cu: stores each token's K and V rows at its slot of the paged cache (one block per token).
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/kv_write.h"

namespace ls::cuda {
namespace {

__global__ void kv_write_kernel(const int32_t* __restrict__ kv_slots, const bf16* __restrict__ k, int64_t k_ld,
                                const bf16* __restrict__ v, int64_t v_ld, int64_t width, bf16* __restrict__ k_cache,
                                bf16* __restrict__ v_cache, int64_t cache_slots, bool vec) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int64_t slot = kv_slots[t];
  if (slot < 0 || slot >= cache_slots) return;
  const bf16* ks = k + t * k_ld;
  const bf16* vs = v + t * v_ld;
  bf16* kd = k_cache + slot * width;
  bf16* vd = v_cache + slot * width;
  if (vec) {
    for (int64_t c = threadIdx.x; c < width / 8; c += blockDim.x) {
      reinterpret_cast<uint4*>(kd)[c] = reinterpret_cast<const uint4*>(ks)[c];
      reinterpret_cast<uint4*>(vd)[c] = reinterpret_cast<const uint4*>(vs)[c];
    }
  } else {
    for (int64_t c = threadIdx.x; c < width; c += blockDim.x) {
      kd[c] = ks[c];
      vd[c] = vs[c];
    }
  }
}

}  // namespace

cudaError_t launch_kv_write(const int32_t* kv_slots, int64_t num_tokens, const void* k, int64_t k_ld, const void* v,
                            int64_t v_ld, int64_t width, void* k_cache, void* v_cache, int64_t cache_slots,
                            Stream stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (!kv_slots || !k || !v || !k_cache || !v_cache || width <= 0 || k_ld < width || v_ld < width)
    return cudaErrorInvalidValue;
  const bool vec = width % 8 == 0 && k_ld % 8 == 0 && v_ld % 8 == 0 && aligned16(k) && aligned16(v) &&
                   aligned16(k_cache) && aligned16(v_cache);
  return launch(kv_write_kernel, dim3(static_cast<unsigned>(num_tokens)), dim3(128), 0, stream, kv_slots,
                static_cast<const bf16*>(k), k_ld, static_cast<const bf16*>(v), v_ld, width,
                static_cast<bf16*>(k_cache), static_cast<bf16*>(v_cache), cache_slots, vec);
}

}  // namespace ls::cuda
