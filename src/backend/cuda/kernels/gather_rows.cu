// gather_rows.cu: copies the logits rows a step wants (by token index) into a dense block.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/gather_rows.h"

namespace ls::cuda {
namespace {

__global__ void gather_rows_kernel(const int32_t* __restrict__ rows, const char* __restrict__ src, int64_t src_stride,
                                   int64_t src_rows, char* __restrict__ out, int64_t out_stride, int64_t row_bytes,
                                   bool vec) {
  pdl_wait();
  pdl_launch_dependents();
  const int32_t row = rows[blockIdx.x];
  char* dst = out + blockIdx.x * out_stride;
  const bool valid = row >= 0 && row < src_rows;
  const char* s = src + (valid ? row : 0) * src_stride;
  if (vec) {
    for (int64_t c = threadIdx.x; c < row_bytes / 16; c += blockDim.x)
      reinterpret_cast<uint4*>(dst)[c] = valid ? reinterpret_cast<const uint4*>(s)[c] : make_uint4(0, 0, 0, 0);
  } else {
    for (int64_t c = threadIdx.x; c < row_bytes / 2; c += blockDim.x)
      reinterpret_cast<uint16_t*>(dst)[c] = valid ? reinterpret_cast<const uint16_t*>(s)[c] : 0;
  }
}

}  // namespace

cudaError_t launch_gather_rows(const int32_t* rows, int64_t num_rows, const void* src, int64_t src_stride,
                               int64_t src_rows, void* out, int64_t out_stride, int64_t row_bytes,
                               Stream stream) {
  if (num_rows == 0) return cudaSuccess;
  if (!rows || !src || !out || row_bytes <= 0 || row_bytes % 2 != 0) return cudaErrorInvalidValue;
  const bool vec = row_bytes % 16 == 0 && src_stride % 16 == 0 && out_stride % 16 == 0 && aligned16(src) &&
                   aligned16(out);
  return launch(gather_rows_kernel, dim3(static_cast<unsigned>(num_rows)), dim3(256), 0, stream, rows,
                static_cast<const char*>(src), src_stride, src_rows, static_cast<char*>(out), out_stride, row_bytes,
                vec);
}

}  // namespace ls::cuda
