// silu_mul.cu: the gated MLP activation, out = silu(gate) * up over the fused gate/up projection's halves.
// silu uses the special-function exp and a fast divide (relative error ~1e-6, far under bf16 rounding): the
// IEEE expf and division made the 1024-token prefill's SiLU-mul issue-bound (~25 instructions per element).
// Optionally a LoRA's gate/up deltas are added to gate_up as it is read (from the sums an expand beside the
// projection wrote; lora_delta.cuh), gate_up itself left as the projection wrote it.
// For a batch sharing one adapter (launch_silu_mul_shared) the deltas come from t and B: a block takes 64 columns
// of 32 rows, holds the shared slot's B rows of its columns in registers (read once per 32 rows, not once a row)
// and its rows' t in shared memory; rows of another slot, or ranks above kSharedRank, take B and t from memory.
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

constexpr int kSharedThreads = 256;
constexpr int kSharedWarps = kSharedThreads / 32;
constexpr int kSharedCols = 64;  // output columns per block: 2 per lane
constexpr int kSharedRows = 32;  // rows per block
constexpr int kSharedRank = 16;  // ranks held in registers

// out = silu(gate + delta) * (up + delta) for kSharedCols columns of kSharedRows rows. Column pair (c, c + 1) of
// the lane; gate column c is gate_up column c, up column c is inter + c.
__global__ void __launch_bounds__(kSharedThreads, 2)
    silu_mul_shared_kernel(const bf16* __restrict__ gate_up, int64_t gu_ld, bf16* __restrict__ out, int64_t out_ld,
                           int rows, int64_t inter, const __grid_constant__ LoraDelta d) {
  __shared__ int slot_of[kSharedRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kSharedCols + 2 * lane;
  const int first = static_cast<int>(blockIdx.y) * kSharedRows, count = min(kSharedRows, rows - first);
  // Before the wait (nothing here is the previous kernel's): the rows' slots, and the block's slot (its first
  // row's: in a batch sharing one adapter, every row's but padding) B rows.
  delta_row_slots(d, first, count, slot_of);
  const int s0 = slot_of[0];
  // Per half (gate, up): the module of the lane's columns (-1: none; the pair shares one, module edges being
  // multiples of 8), its rank at s0 and, where that is at most kSharedRank, its B rows.
  int mod[2], rank0[2];
  float b[2][2][kSharedRank];
  const bool live = c < inter;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t col = c + h * inter;
    mod[h] = live ? delta_module(d, col) : -1;
    rank0[h] = mod[h] >= 0 && s0 >= 0 ? min(max(d.m[mod[h]].ranks[s0], 0), static_cast<int>(d.module_stride)) : 0;
#pragma unroll
    for (int e = 0; e < 2; ++e)
#pragma unroll
      for (int k = 0; k < kSharedRank; ++k) b[h][e][k] = 0.0f;
    if (rank0[h] > 0 && rank0[h] <= kSharedRank) {
      const bf16* row = static_cast<const bf16*>(d.m[mod[h]].b[s0]) + (col - d.m[mod[h]].col_begin) * rank0[h];
      if (rank0[h] == kSharedRank && (reinterpret_cast<uintptr_t>(row) & 15) == 0) {  // two rows: 64 bytes
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          float f[8];
          unpack8(*reinterpret_cast<const uint4*>(row + q * 8), f);
#pragma unroll
          for (int i = 0; i < 8; ++i) b[h][q / 2][(q % 2) * 8 + i] = f[i];
        }
      } else {
#pragma unroll
        for (int e = 0; e < 2; ++e)
#pragma unroll
          for (int k = 0; k < kSharedRank; ++k)
            if (k < rank0[h]) b[h][e][k] = __bfloat162float(row[e * rank0[h] + k]);
      }
    }
  }
  pdl_wait();
  pdl_launch_dependents();
  // A warp's rows (warp, warp + 8, ...): their gate/up pairs and, in lane (j, k) = (lane / 16, lane % 16), t of
  // module j at rank k (summed over the shrink's splits, rounded to bf16), all loads issued before any is used;
  // each lane then takes t of its columns' module from the lanes holding it.
  constexpr int kRowsPerWarp = kSharedRows / kSharedWarps;
  const int tj = lane / kSharedRank, tk = lane % kSharedRank;
  const int t_rank = tj < d.num_modules && s0 >= 0
                         ? min(max(d.m[tj].ranks[s0], 0), static_cast<int>(d.module_stride)) : 0;
  const bool t_live = tk < t_rank && t_rank <= kSharedRank;
  const float* tp = d.t + (t_live ? tj * d.module_stride + tk : 0);
  __nv_bfloat162 g2[kRowsPerWarp], u2[kRowsPerWarp];
  float tv[kRowsPerWarp];
#pragma unroll
  for (int q = 0; q < kRowsPerWarp; ++q) {
    const int i = warp + q * kSharedWarps;
    const int64_t r = first + i;
    const bool row = i < count;
    g2[q] = u2[q] = __floats2bfloat162_rn(0.0f, 0.0f);
    if (row && live) {
      g2[q] = *reinterpret_cast<const __nv_bfloat162*>(gate_up + r * gu_ld + c);
      u2[q] = *reinterpret_cast<const __nv_bfloat162*>(gate_up + r * gu_ld + inter + c);
    }
    tv[q] = 0.0f;
  }
  for (int z = 0; z < d.splits; ++z) {
#pragma unroll
    for (int q = 0; q < kRowsPerWarp; ++q) {
      const int i = warp + q * kSharedWarps;
      if (t_live && i < count && slot_of[i] == s0)
        tv[q] += __ldcg(tp + (first + i) * d.row_stride + z * d.split_stride);
    }
  }
#pragma unroll
  for (int q = 0; q < kRowsPerWarp; ++q) {
    const int i = warp + q * kSharedWarps;
    if (i >= count) break;  // warp-uniform
    const int64_t r = first + i;
    const float t_round = __bfloat162float(__float2bfloat16_rn(tv[q]));
    float v[2][2] = {{__low2float(g2[q]), __high2float(g2[q])}, {__low2float(u2[q]), __high2float(u2[q])}};
    const int slot = slot_of[i];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      // Every lane shuffles (the sources are the lanes of module mod[h]); lanes whose rows or columns have no
      // delta from the held B drop the result.
      const int src = (mod[h] >= 0 ? mod[h] : 0) * kSharedRank;
      float acc[2] = {0.0f, 0.0f};
#pragma unroll
      for (int k = 0; k < kSharedRank; ++k) {
        const float t = __shfl_sync(0xffffffffu, t_round, src + k);
        acc[0] += t * b[h][0][k];
        acc[1] += t * b[h][1][k];
      }
      if (!live || slot < 0 || mod[h] < 0) continue;
      if (slot != s0 || rank0[h] > kSharedRank) {
#pragma unroll
        for (int e = 0; e < 2; ++e) acc[e] = delta_in_memory(d, mod[h], slot, r, c + h * inter + e);
      }
#pragma unroll
      for (int e = 0; e < 2; ++e) v[h][e] = __bfloat162float(__float2bfloat16_rn(v[h][e] + acc[e]));
    }
    if (live)
      *reinterpret_cast<__nv_bfloat162*>(out + r * out_ld + c) =
          __floats2bfloat162_rn(silu(v[0][0]) * v[1][0], silu(v[0][1]) * v[1][1]);
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

namespace ls::cuda {

bool silu_mul_shared_supported(const void* gate_up, int64_t gate_up_ld, const void* out, int64_t out_ld, int64_t rows,
                               int64_t inter, const LoraDelta& d) {
  if (rows <= 0 || rows > 65535 * kSharedRows || inter <= 0 || inter % 2 != 0 || gate_up_ld % 2 != 0 ||
      out_ld % 2 != 0 || gate_up_ld < 2 * inter || out_ld < inter || !gate_up || !out || !d.t || d.sums ||
      reinterpret_cast<uintptr_t>(gate_up) % 4 != 0 || reinterpret_cast<uintptr_t>(out) % 4 != 0 ||
      d.num_modules < 1 || d.num_modules > 2 || d.splits < 1)
    return false;
  // The t staged per row holds modules 0 and 1; each module's columns begin and end on even columns (a lane's
  // pair never straddles two), inside gate_up.
  for (int j = 0; j < d.num_modules; ++j)
    if (d.m[j].col_begin % 2 != 0 || d.m[j].col_end % 2 != 0 || d.m[j].col_end > 2 * inter || !d.m[j].b ||
        !d.m[j].ranks)
      return false;
  return true;
}

cudaError_t launch_silu_mul_shared(const void* gate_up, int64_t gate_up_ld, void* out, int64_t out_ld, int64_t rows,
                                   int64_t inter, const LoraDelta& d, Stream stream) {
  if (rows == 0) return cudaSuccess;
  if (!silu_mul_shared_supported(gate_up, gate_up_ld, out, out_ld, rows, inter, d)) return cudaErrorInvalidValue;
  const dim3 grid(ceil_div(inter, kSharedCols), ceil_div(rows, kSharedRows));
  return launch(silu_mul_shared_kernel, grid, dim3(kSharedThreads), 0, stream,
                static_cast<const bf16*>(gate_up), gate_up_ld, static_cast<bf16*>(out), out_ld, static_cast<int>(rows),
                inter, d);
}

}  // namespace ls::cuda
