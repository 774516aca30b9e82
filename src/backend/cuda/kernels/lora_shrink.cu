// lora_shrink.cu: the multi-LoRA op's shrink, t = x A^T per (tile, module, K split), into the partial sums
// the expand and the deltas read (lora.cu's top comment says how).
#include "backend/cuda/kernels/lora_common.cuh"

namespace ls::cuda {
namespace {

using namespace lora_detail;

constexpr int kPassRanks = 16;        // shrink: ranks per pass (2 groups of 8)

__device__ __forceinline__ uint4 load16_or_zero(const bf16* p, bool valid) {
  return valid ? *reinterpret_cast<const uint4*>(p) : make_uint4(0, 0, 0, 0);
}

constexpr int kPassGroups = kPassRanks / 8;  // shrink: 8-rank groups per pass

// The lane's A rows of one pass (rank r0 + 8 grp + g of each 8-rank group; null past the rank).
__device__ __forceinline__ void a_rows_of(const bf16* (&rows)[kPassGroups], const bf16* a, int64_t in_dim, int r0,
                                          int g, int rank) {
#pragma unroll
  for (int grp = 0; grp < kPassGroups; ++grp) {
    const int r = r0 + grp * 8 + g;
    rows[grp] = r < rank ? a + static_cast<int64_t>(r) * in_dim : nullptr;
  }
}

// A lane's A words of one 64-wide K chunk (its 16 physical k from k0, in two words); zeros past the slice.
__device__ __forceinline__ void load_a_chunk(uint4 (&w0)[kPassGroups], uint4 (&w1)[kPassGroups],
                                             const bf16* const (&rows)[kPassGroups], int k0, int k_end) {
#pragma unroll
  for (int grp = 0; grp < kPassGroups; ++grp) {
    w0[grp] = load16_or_zero(rows[grp] + k0, rows[grp] && k0 < k_end);
    w1[grp] = load16_or_zero(rows[grp] + k0 + 8, rows[grp] && k0 + 8 < k_end);
  }
}

// Shrink, in passes of kPassRanks ranks. A does not depend on the previous kernel: the first chunk's words are
// loaded before pdl_wait, and each chunk's loop loads the next chunk's A words before it multiplies, so two
// chunks of A are in flight per warp. 3 blocks per SM (80 registers): passes of 16 ranks keep a lane's A words of
// two chunks in 32 registers, and more blocks' loads are in flight. History (bench/cuda_engine_notes.md, run 10):
// with passes of 32 for ranks above 16 the kernel needed 121 registers (2 blocks per SM), and batch-128 steps took
// 2.5-3% longer.
// Thin tiles (1-2 rows: decode steps with different adapters) split K only `thin_splits` ways, in slices of
// `thin_slice` per warp: the grid's splits are sized for a batch sharing one adapter (few tiles), and with a tile
// per token each block would stream only a few chunks of A behind its fixed chain of dependent loads (segment
// scan, slot, rank, A). The blocks of the other splits return; split 0 writes their partial sums as zeros.
__global__ void __launch_bounds__(kThreads, 3)
    lora_shrink_kernel(const __grid_constant__ LoraArgs p, int slice, int thin_splits, int thin_slice, float* partial) {
  __shared__ int32_t tile_info[4];
  __shared__ float red[kWarps][kTile][kPassRanks + 1];
  const TileRef tile = find_tile<false>(p, [](int) { return static_cast<int>(blockIdx.x); }, tile_info);
  if (tile.count == 0) return idle_block_exit();
  const bool thin = tile.count <= kThinRows;
  if (thin && static_cast<int>(blockIdx.z) >= thin_splits) return idle_block_exit();
  const LoraModuleArgs& mod = p.m[blockIdx.y];
  const int32_t slot = p.seg_slot[tile.seg];
  const int rank = mod.ranks[slot];
  if (rank <= 0) return idle_block_exit();
  const bf16* a = static_cast<const bf16*>(mod.a[slot]);
  const PartialLayout lay = partial_layout(p, static_cast<int>(gridDim.z));
  float* out = partial + static_cast<int64_t>(blockIdx.z) * lay.split_stride + blockIdx.y * lay.module_stride;
  if (thin && blockIdx.z == 0)
    for (int e = threadIdx.x; e < (lay.splits - thin_splits) * kThinRows * rank; e += kThreads) {
      const int z = thin_splits + e / (kThinRows * rank), row = e / rank % kThinRows;
      if (row < tile.count) out[z * lay.split_stride + (tile.begin + row) * lay.row_stride + e % rank] = 0.0f;
    }
  if (thin) slice = thin_slice;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  // K offsets fit in 32 bits (in_dim is a row length).
  const int k_begin = (static_cast<int>(blockIdx.z) * kWarps + warp) * slice;
  const int k_end = min(static_cast<int>(p.in_dim), k_begin + slice);
  const bf16* x = static_cast<const bf16*>(p.x);
  const bf16* x_g = x + (tile.begin + g) * p.x_ld;
  const bf16* x_g8 = x + (tile.begin + g + 8) * p.x_ld;
  const bool has_g = g < tile.count, has_g8 = g + 8 < tile.count;
  const bf16* rows[kPassGroups];
  uint4 w0[kPassGroups], w1[kPassGroups];
  a_rows_of(rows, a, p.in_dim, 0, g, rank);
  load_a_chunk(w0, w1, rows, k_begin + t4 * 16, k_end);
  pdl_wait();
  pdl_launch_dependents();
  for (int r0 = 0; r0 < rank; r0 += kPassRanks) {
    if (r0 > 0) {
      a_rows_of(rows, a, p.in_dim, r0, g, rank);
      load_a_chunk(w0, w1, rows, k_begin + t4 * 16, k_end);
    }
    float acc[kPassGroups][4] = {};
    for (int k = k_begin; k < k_end; k += kChunk) {
      const int k0 = k + t4 * 16, k1 = k0 + 8;
      const bool v0 = k0 < k_end, v1 = k1 < k_end;
      const uint4 xg0 = load16_or_zero(x_g + k0, has_g && v0), xg1 = load16_or_zero(x_g + k1, has_g && v1);
      const uint4 xh0 = load16_or_zero(x_g8 + k0, has_g8 && v0), xh1 = load16_or_zero(x_g8 + k1, has_g8 && v1);
      const bool more = k + kChunk < k_end;  // warp-uniform
      uint4 n0[kPassGroups], n1[kPassGroups];
      if (more) load_a_chunk(n0, n1, rows, k0 + kChunk, k_end);
#pragma unroll
      for (int grp = 0; grp < kPassGroups; ++grp) {
        if (r0 + grp * 8 >= rank) break;  // uniform: the rest of the pass is past the rank
        mma_word(acc[grp], xg0, xh0, w0[grp]);
        mma_word(acc[grp], xg1, xh1, w1[grp]);
      }
      if (more) {
#pragma unroll
        for (int grp = 0; grp < kPassGroups; ++grp) {
          w0[grp] = n0[grp];
          w1[grp] = n1[grp];
        }
      }
    }
#pragma unroll
    for (int grp = 0; grp < kPassGroups; ++grp) {
      const int c = grp * 8 + 2 * t4;
      red[warp][g][c] = acc[grp][0];
      red[warp][g][c + 1] = acc[grp][1];
      red[warp][g + 8][c] = acc[grp][2];
      red[warp][g + 8][c + 1] = acc[grp][3];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < kTile * kPassRanks; e += kThreads) {
      const int row = e / kPassRanks, c = e % kPassRanks;
      if (row >= tile.count || r0 + c >= rank) continue;
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += red[w][row][c];
      out[(tile.begin + row) * lay.row_stride + r0 + c] = sum;
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_lora_shrink(const LoraArgs& p, float* scratch, int num_sms, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0) return cudaSuccess;
  if (!launchable(p, scratch)) return cudaErrorInvalidValue;
  const Plan pl = plan_of(p, num_sms);
  return launch(lora_shrink_kernel, dim3(static_cast<unsigned>(pl.tiles), p.num_modules, pl.splits), dim3(kThreads), 0,
                stream, p, pl.slice, pl.thin_splits, pl.thin_slice, scratch);
}

}  // namespace ls::cuda
