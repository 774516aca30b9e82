// silu_mul.cu: the gated MLP activation, out = silu(gate) * up over the fused gate/up projection's halves.
// silu uses the special-function exp and a fast divide (relative error ~1e-6, far under bf16 rounding): the
// IEEE expf and division made the 1024-token prefill's SiLU-mul issue-bound (~25 instructions per element).
// Optionally a LoRA's gate/up deltas are added to gate_up as it is read (from the sums an expand beside the
// projection wrote; lora_delta.cuh), gate_up itself left as the projection wrote it.
// For a batch sharing one adapter (launch_silu_mul_shared) the deltas come from t and B on the tensor cores: a
// block takes 32 columns of 32 rows, holds the shared slot's B fragments of its columns in registers (read once per
// 32 rows, not once a row) and computes t B^T by mma; rows of another slot, or ranks above 16, take B and t from
// memory.
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

constexpr int kSharedWarps = 2;                       // a warp takes 16 rows (one mma M) of the block's
constexpr int kSharedThreads = 32 * kSharedWarps;     // columns
constexpr int kSharedRows = 16 * kSharedWarps;
constexpr int kSharedTiles = 4;                       // column tiles of 8 (one mma N) per block
constexpr int kSharedCols = 8 * kSharedTiles;
constexpr int kSharedRank = 16;                       // one mma K: ranks up to 16 on the tensor cores

// out = silu(gate + delta) * (up + delta) for 32 columns of 32 rows. The deltas of rows with the block's slot s0
// (its first row's) are mma products: t [16 rows x 16 ranks] of a module times B^T [16 ranks x 8 columns], lane
// (g, t4) = (lane / 4, lane % 4) holding rows g and g + 8, columns 2 t4 and 2 t4 + 1 of each tile, where it reads
// gate/up and writes out. Rows of another slot, or ranks above 16, take t and B from memory (delta_in_memory).
__global__ void __launch_bounds__(kSharedThreads)
    silu_mul_shared_kernel(const bf16* __restrict__ gate_up, int64_t gu_ld, bf16* __restrict__ out, int64_t out_ld,
                           int rows, int64_t inter, const __grid_constant__ LoraDelta d) {
  __shared__ int slot_of[kSharedRows];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  const int first = static_cast<int>(blockIdx.y) * kSharedRows, count = min(kSharedRows, rows - first);
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kSharedCols;
  // Before the wait (nothing here is the previous kernel's): the rows' slots, and the block's slot's B fragments.
  delta_row_slots(d, first, count, slot_of);
  const int s0 = slot_of[0];
  int rank_of[2] = {0, 0};  // module j's rank at s0 (0: none, or above kSharedRank: from memory)
#pragma unroll
  for (int j = 0; j < 2; ++j)
    if (j < d.num_modules && s0 >= 0) rank_of[j] = delta_rank(d, j, s0);
  // Each tile's module in the gate and up halves (-1: none; module edges fall on tiles), and whether its rank at
  // s0 is at most kSharedRank (the mma's; else t and B from memory).
  auto module_of = [&](int h, int n) {
    return c0 + 8 * n < inter ? delta_module(d, c0 + 8 * n + h * inter) : -1;
  };
  auto held = [&](int j) { return (j == 0 ? rank_of[0] : rank_of[1]) <= kSharedRank; };
  // The B fragments of each tile: B row (the tile's column g) at ranks 2 t4 (+1) and 2 t4 + 8 (+1), zero past the
  // rank. Every load is unconditional (from the row's first element, or gate_up's first, where its value is not
  // taken), so that all are in flight together: a load under a branch waits for its value at the branch's end.
  const bf16* b_of[2] = {nullptr, nullptr};
#pragma unroll
  for (int j = 0; j < 2; ++j)
    if (rank_of[j] > 0 && rank_of[j] <= kSharedRank) b_of[j] = static_cast<const bf16*>(d.m[j].b[s0]);
  uint32_t bf[2][kSharedTiles][2];
  {
    const bf16* row[2][kSharedTiles];
    int rank_at[2][kSharedTiles];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int n = 0; n < kSharedTiles; ++n) {
        const int j = module_of(h, n);
        const bf16* b = j == 0 ? b_of[0] : j == 1 ? b_of[1] : nullptr;
        rank_at[h][n] = b ? (j == 0 ? rank_of[0] : rank_of[1]) : 0;
        row[h][n] = b ? b + (c0 + 8 * n + h * inter - d.m[j].col_begin + g) * rank_at[h][n] : gate_up;
      }
    }
    if (rank_of[0] % 2 == 0 && rank_of[1] % 2 == 0) {  // pairs of ranks are 4-byte words
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int n = 0; n < kSharedTiles; ++n)
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const int k = 2 * t4 + 8 * q;
            const uint32_t w = *reinterpret_cast<const uint32_t*>(row[h][n] + (k < rank_at[h][n] ? k : 0));
            bf[h][n][q] = k < rank_at[h][n] ? w : 0u;
          }
    } else {
      bf16 e[2][kSharedTiles][4];
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int n = 0; n < kSharedTiles; ++n)
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const int k = 2 * t4 + q % 2 + 8 * (q / 2);
            e[h][n][q] = row[h][n][k < rank_at[h][n] ? k : 0];
          }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int n = 0; n < kSharedTiles; ++n) {
          uint32_t bits[4];
#pragma unroll
          for (int q = 0; q < 4; ++q)
            bits[q] = 2 * t4 + q % 2 + 8 * (q / 2) < rank_at[h][n] ? __bfloat16_as_ushort(e[h][n][q]) : 0u;
          bf[h][n][0] = bits[0] | bits[1] << 16;
          bf[h][n][1] = bits[2] | bits[3] << 16;
        }
      }
    }
  }
  // Whether every row of the block takes its deltas from the mma: its slot is s0 or none (a row without an adapter
  // has t zero there, so its delta is zero), and s0's ranks are at most kSharedRank.
  const bool row_ok = threadIdx.x >= count || slot_of[threadIdx.x] < 0 || slot_of[threadIdx.x] == s0;
  const bool fast = __syncthreads_and(row_ok) && held(0) && held(1);
  pdl_wait();
  pdl_launch_dependents();
  const int r0 = 16 * warp;  // the warp's first row in the block
  if (r0 >= count) return;
  // t of the warp's rows as mma A fragments, one per module: rows g and g + 8, ranks 2 t4 (+1) and 2 t4 + 8 (+1),
  // in the fragment's order a0 (g, k), a1 (g + 8, k), a2 (g, k + 8), a3 (g + 8, k + 8), the shrink's one split
  // rounded to bf16; zero for rows of other slots and past the rank. The loads are unconditional (offset 0 and the
  // value dropped where it is not taken), so that they are all in flight together.
  int at[2][8];  // t offsets (silu_mul_shared_supported: t's scratch is under 2^31 floats)
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int rank = j == 0 ? rank_of[0] : rank_of[1];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = r0 + g + 8 * ((e / 2) % 2), k = 2 * t4 + (e % 2) + 8 * (e / 4);
      const bool live = rank <= kSharedRank && k < rank && i < count && slot_of[i] == s0;
      at[j][e] = live ? static_cast<int>((first + i) * d.row_stride + j * d.module_stride + k) : -1;
    }
  }
  // The lane's gate and up pairs of rows g and g + 8 (the last row where those are past the count), every tile's,
  // and its t, all loaded before any is used.
  __nv_bfloat162 gu[kSharedTiles][2][2];
  if (fast) {
#pragma unroll
    for (int n = 0; n < kSharedTiles; ++n) {
      const int64_t col = (c0 + 8 * n < inter ? c0 + 8 * n : c0) + 2 * t4;
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const int64_t r = first + min(r0 + g + 8 * rr, count - 1);
#pragma unroll
        for (int h = 0; h < 2; ++h)
          gu[n][rr][h] = *reinterpret_cast<const __nv_bfloat162*>(gate_up + r * gu_ld + h * inter + col);
      }
    }
  }
  float tv[2][8];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 8; ++e) tv[j][e] = __ldcg(d.t + max(at[j][e], 0));
  uint32_t ta[2][4];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int q = 0; q < 4; ++q)
      ta[j][q] = pack_bf16(at[j][2 * q] >= 0 ? tv[j][2 * q] : 0.0f, at[j][2 * q + 1] >= 0 ? tv[j][2 * q + 1] : 0.0f);
  // Each tile: gate/up from the registers (fast) or memory, plus the products; in a block that is not fast, the
  // deltas of rows of other slots, or of ranks above kSharedRank, from memory.
#pragma unroll
  for (int n = 0; n < kSharedTiles; ++n) {
    const int64_t col = c0 + 8 * n + 2 * t4;  // the lane's gate column pair (col, col + 1)
    if (c0 + 8 * n >= inter) break;
    float acc[2][4];  // the products, per half: rows g (0, 1) and g + 8 (2, 3), columns 2 t4 and 2 t4 + 1
    int mod[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[h][q] = 0.0f;
      mod[h] = module_of(h, n);  // warp-uniform
      if (mod[h] == 0) mma_bf16(acc[h], ta[0], bf[h][n][0], bf[h][n][1]);
      if (mod[h] == 1) mma_bf16(acc[h], ta[1], bf[h][n][0], bf[h][n][1]);
    }
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int i = r0 + g + 8 * rr;
      if (i >= count) continue;
      const int64_t r = first + i;
      const int slot = slot_of[i];
      __nv_bfloat162 gate_up2[2];
#pragma unroll
      for (int h = 0; h < 2; ++h)
        gate_up2[h] =
            fast ? gu[n][rr][h] : *reinterpret_cast<const __nv_bfloat162*>(gate_up + r * gu_ld + h * inter + col);
      float v[2][2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        v[h][0] = __low2float(gate_up2[h]);
        v[h][1] = __high2float(gate_up2[h]);
        const int j = mod[h];
        if (j < 0 || slot < 0) continue;
        float delta[2] = {acc[h][2 * rr], acc[h][2 * rr + 1]};
        if (!fast && (slot != s0 || !held(j))) {
#pragma unroll
          for (int e = 0; e < 2; ++e) delta[e] = delta_in_memory(d, j, slot, r, col + h * inter + e);
        }
#pragma unroll
        for (int e = 0; e < 2; ++e) v[h][e] = __bfloat162float(__float2bfloat16_rn(v[h][e] + delta[e]));
      }
      *reinterpret_cast<__nv_bfloat162*>(out + r * out_ld + col) =
          __floats2bfloat162_rn(silu(v[0][0]) * v[1][0], silu(v[0][1]) * v[1][1]);
    }
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
  if (rows <= 0 || rows > 65535 * kSharedRows || inter <= 0 || inter % 8 != 0 || gate_up_ld % 2 != 0 ||
      out_ld % 2 != 0 || gate_up_ld < 2 * inter || out_ld < inter || !gate_up || !out || !d.t || d.sums ||
      reinterpret_cast<uintptr_t>(gate_up) % 4 != 0 || reinterpret_cast<uintptr_t>(out) % 4 != 0 ||
      d.num_modules < 1 || d.num_modules > 2 || d.splits != 1 || rows * d.row_stride > INT32_MAX)
    return false;
  // Modules 0 and 1 (t's A fragments); each module's columns begin and end on multiples of 8 (an mma tile is one
  // module's), inside gate_up.
  for (int j = 0; j < d.num_modules; ++j)
    if (d.m[j].col_begin % 8 != 0 || d.m[j].col_end % 8 != 0 || d.m[j].col_end > 2 * inter || !d.m[j].b ||
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
