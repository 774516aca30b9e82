// embedding.cu: the embedding gather, one block per token copying its table row.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/embedding.h"

namespace ls::cuda {
namespace {

__global__ void embedding_kernel(const int32_t* __restrict__ ids, const bf16* __restrict__ table, int64_t table_ld,
                                 int64_t vocab, int64_t cols, bf16* __restrict__ out, int64_t out_ld, bool vec) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool valid = id >= 0 && id < vocab;
  const bf16* src = table + (valid ? id : 0) * table_ld;
  bf16* dst = out + t * out_ld;
  if (vec) {
    for (int64_t c = threadIdx.x; c < cols / 8; c += blockDim.x) {
      const uint4 v = valid ? *reinterpret_cast<const uint4*>(src + c * 8) : make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(dst + c * 8) = v;
    }
  } else {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = valid ? src[c] : __float2bfloat16(0.0f);
  }
}

}  // namespace

cudaError_t launch_embedding(const int32_t* ids, int64_t num_tokens, const void* table, int64_t table_ld,
                             int64_t vocab, int64_t cols, void* out, int64_t out_ld, Stream stream) {
  if (num_tokens == 0) return cudaSuccess;
  if (!ids || !table || !out || cols <= 0 || table_ld < cols || out_ld < cols) return cudaErrorInvalidValue;
  const bool vec = cols % 8 == 0 && table_ld % 8 == 0 && out_ld % 8 == 0 && aligned16(table) && aligned16(out);
  return launch(embedding_kernel, dim3(static_cast<unsigned>(num_tokens)), dim3(128), 0, stream, ids,
                static_cast<const bf16*>(table), table_ld, vocab, cols, static_cast<bf16*>(out), out_ld, vec);
}

}  // namespace ls::cuda
