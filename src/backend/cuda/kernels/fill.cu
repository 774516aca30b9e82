// fill.cu: float32 -> bf16 conversion of uploaded weights, the seeded uniform fill of dummy weights (the
// same uniform_at values as the CPU backend, rounded to bf16 once), and a read sweep that evicts L2.
#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/fill.h"
#include "backend/random_fill.h"

namespace ls::cuda {
namespace {

__global__ void f32_to_bf16_kernel(const float* __restrict__ src, bf16* __restrict__ dst, int64_t n) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void fill_uniform_kernel(void* t, int64_t ld, int64_t rows, int64_t cols, bool out_f32, uint64_t seed,
                                    float lo, float hi) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // Contiguous tensors (every weight) skip the 64-bit division.
    const int64_t r = ld == cols ? 0 : i / cols, c = ld == cols ? i : i - r * cols;
    const float v = uniform_at(seed, static_cast<uint64_t>(i), lo, hi);
    if (out_f32) {
      static_cast<float*>(t)[r * ld + c] = v;
    } else {
      static_cast<bf16*>(t)[r * ld + c] = __float2bfloat16_rn(v);
    }
  }
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 132 * 32 ? blocks : 132 * 32);
}

__global__ void read_sweep_kernel(const uint4* p, int64_t n) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // volatile: the loads are the point, their values are not used (scratch registers inside the asm).
    asm volatile("{ .reg .u32 a, b, c, d; ld.global.cg.v4.u32 {a, b, c, d}, [%0]; }" : : "l"(p + i));
  }
}

}  // namespace

cudaError_t launch_f32_to_bf16(const float* src, void* dst, int64_t n, Stream stream) {
  if (n == 0) return cudaSuccess;
  if (!src || !dst) return cudaErrorInvalidValue;
  return launch(f32_to_bf16_kernel, dim3(grid_for(n)), dim3(256), 0, stream, src, static_cast<bf16*>(dst), n);
}

cudaError_t launch_fill_uniform(void* t, int64_t ld, int64_t rows, int64_t cols, bool out_f32, uint64_t seed,
                                float lo, float hi, Stream stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (!t || ld < cols) return cudaErrorInvalidValue;
  return launch(fill_uniform_kernel, dim3(grid_for(rows * cols)), dim3(256), 0, stream, t, ld, rows, cols, out_f32,
                seed, lo, hi);
}

cudaError_t launch_read_sweep(const void* p, int64_t bytes, Stream stream) {
  if (bytes <= 0) return cudaSuccess;
  if (!p || bytes % 16 != 0 || !aligned16(p)) return cudaErrorInvalidValue;
  return launch(read_sweep_kernel, dim3(1024), dim3(256), 0, stream, static_cast<const uint4*>(p), bytes / 16);
}

}  // namespace ls::cuda
