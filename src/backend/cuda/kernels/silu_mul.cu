// silu_mul.cu: the gated MLP activation, out = silu(gate) * up over the fused gate/up projection's halves.
// silu uses the special-function exp and a fast divide (relative error ~1e-6, far under bf16 rounding): the
// IEEE expf and division made the 1024-token prefill's SiLU-mul issue-bound (~25 instructions per element).
// Optionally a LoRA's gate/up deltas are added to gate_up as it is read (from the sums an expand beside the
// projection wrote; lora_delta.cuh), gate_up itself left as the projection wrote it.
#include <type_traits>

#include "backend/cuda/kernels/common.cuh"
#include "backend/cuda/kernels/lora_delta.cuh"
#include "backend/cuda/kernels/silu_mul.h"

namespace ls::cuda {
namespace {

template <bool kVec, bool kDelta>
__global__ void silu_mul_kernel(const bf16* __restrict__ gate_up, int64_t gu_ld, bf16* __restrict__ out,
                                int64_t out_ld, int64_t inter, const __grid_constant__ LoraDelta delta) {
  static_assert(!kDelta || kVec, "the deltas take the vector path");
  __shared__ std::conditional_t<kDelta, DeltaRow, char> row;
  const int64_t r = blockIdx.y;
  if constexpr (kDelta) delta_row(delta, r, row);  // the row's slot and ranks: before the wait
  pdl_wait();
  pdl_launch_dependents();
  const bf16* g = gate_up + r * gu_ld;
  const bf16* u = g + inter;
  bf16* o = out + r * out_ld;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (kVec) {
    if (i >= inter / 8) return;
    float gv[8], uv[8];
    load8(g + i * 8, gv);
    load8(u + i * 8, uv);
    if constexpr (kDelta) {
      delta_apply8(delta, row, r, i * 8, gv);
      delta_apply8(delta, row, r, inter + i * 8, uv);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) gv[j] = silu(gv[j]) * uv[j];
    store8(o + i * 8, gv);
  } else {
    if (i >= inter) return;
    o[i] = __float2bfloat16_rn(silu(__bfloat162float(g[i])) * __bfloat162float(u[i]));
  }
}

}  // namespace

cudaError_t launch_silu_mul(const void* gate_up, int64_t gate_up_ld, void* out, int64_t out_ld, int64_t rows,
                            int64_t inter, const LoraDelta* delta, Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!gate_up || !out || inter <= 0 || gate_up_ld < 2 * inter || out_ld < inter || rows > 65535)
    return cudaErrorInvalidValue;
  const bool vec = inter % 8 == 0 && gate_up_ld % 8 == 0 && out_ld % 8 == 0 && aligned16(gate_up) && aligned16(out);
  if (delta && (!delta->sums || !lora_delta_launchable(*delta, 2 * inter, vec))) return cudaErrorInvalidValue;
  const auto* gu = static_cast<const bf16*>(gate_up);
  auto* o = static_cast<bf16*>(out);
  const int threads = 256;
  const dim3 grid(ceil_div(vec ? inter / 8 : inter, threads), static_cast<unsigned>(rows));
  const LoraDelta none;
  auto run = [&](auto kernel) {
    return launch(kernel, grid, dim3(threads), 0, stream, gu, gate_up_ld, o, out_ld, inter, delta ? *delta : none);
  };
  if (delta) return run(silu_mul_kernel<true, true>);
  return vec ? run(silu_mul_kernel<true, false>) : run(silu_mul_kernel<false, false>);
}

}  // namespace ls::cuda
