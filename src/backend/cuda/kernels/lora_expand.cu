// lora_expand.cu: the multi-LoRA op's expand, y += t B^T per (tile, run of columns), by the tensor cores for
// tiles of many rows and by bulk copies of B for tiles of one or two (lora.cu's top comment says how).
#include "backend/cuda/kernels/bulk_copy.cuh"
#include "backend/cuda/kernels/lora_common.cuh"

namespace ls::cuda {
namespace {

using namespace lora_detail;

constexpr int kMaxColsPerWarp = 64;   // expand, mma path: columns per warp and step (32 in decode steps, else 64)
constexpr int kBulkStages = 2;        // expand, bulk path: B stages in flight per block
constexpr int kBulkStageBytes = 16384;

// Eight consecutive bf16 of a B row from `k` on (zeros past the rank), as one 16-byte word.
__device__ __forceinline__ uint4 load_b_word(const bf16* row, int k, int rank, bool vector) {
  if (vector) return k < rank ? *reinterpret_cast<const uint4*>(row + k) : make_uint4(0, 0, 0, 0);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int k0 = k + 2 * i;
    const unsigned short lo = k0 < rank ? __bfloat16_as_ushort(row[k0]) : 0;
    const unsigned short hi = k0 + 1 < rank ? __bfloat16_as_ushort(row[k0 + 1]) : 0;
    w[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// The expand's unit of work: a tile and the columns [n_begin, n_end) of module m's output.
struct ExpandUnit {
  int tile, m, n_begin, n_end;
};

// What both expand paths share: the tile, its module and slot, the block's columns [n_begin, n_end), and t.
struct ExpandTile {
  TileRef tile;
  int m, rank;
  int64_t n_begin, n_end;
  const bf16* b;  // B [out_dim, rank] of the slot
};

// The shared memory of the expand: t, summed over the K splits and rounded to bf16, and the path's own buffers
// (the mma path's product before the store, or the bulk path's B stages and their mbarriers).
struct ExpandSmem {
  int32_t tile_info[4];
  ExpandUnit unit;
  __align__(16) bf16 ts[kTile][kLoraMaxRank + 8];  // rows padded so they fall in different banks
  __align__(8) uint64_t full[kBulkStages];
  union {
    float cs[kWarps][kTile][kMaxColsPerWarp + 4];
    __align__(128) unsigned char stage[kBulkStages][kBulkStageBytes];
  };
};

// The expand's fp32 sums of row `row`, columns [col, col + 8) (those under out_dim) into mod.sums instead of y:
// 16-byte stores where lora_delta_sums allowed them.
__device__ __forceinline__ void store_sums8(const LoraModuleArgs& mod, int64_t row, int64_t col, const float* c) {
  float* dst = mod.sums + row * mod.y_ld + col;
  if (col + 8 <= mod.out_dim && mod.y_ld % 4 == 0 && (reinterpret_cast<uintptr_t>(mod.sums) & 15) == 0) {
    reinterpret_cast<float4*>(dst)[0] = make_float4(c[0], c[1], c[2], c[3]);
    reinterpret_cast<float4*>(dst)[1] = make_float4(c[4], c[5], c[6], c[7]);
  } else {
    for (int x = 0; x < 8 && col + x < mod.out_dim; ++x) dst[x] = c[x];
  }
}

// The mma path (tiles of many rows: prefill chunks, a batch sharing one adapter): each warp owns kColsPerWarp
// columns per step: per 32 ranks a lane takes its A fragment from t in shared memory, loads 16 bytes of each of
// its kColsPerWarp / 8 B rows, and accumulates in fp32; the product goes through shared memory so that y is read
// and written 16 bytes per lane. 64 columns need 128 registers (2 blocks per SM); 32 fit in 64 (4 blocks per SM),
// which the bulk path of the same kernel needs to keep its copies in flight.
template <int kColsPerWarp>
__device__ __forceinline__ void expand_mma(const LoraModuleArgs& mod, const ExpandTile& e, ExpandSmem& sm) {
  const bool vector = e.rank % 8 == 0 && (reinterpret_cast<uintptr_t>(e.b) & 15) == 0;
  bf16* y = static_cast<bf16*>(mod.y);
  const bool vector_y = mod.y_ld % 8 == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0;
  constexpr int kColGroups = kColsPerWarp / 8;
  const TileRef& tile = e.tile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4;
  for (int64_t n_warp = e.n_begin + warp * kColsPerWarp; n_warp < e.n_end; n_warp += kWarps * kColsPerWarp) {
    // The y pieces this lane updates (row, 8 columns) are loaded up front, with the first B words, so that the
    // step waits for memory once.
    constexpr int kPieces = kTile * (kColsPerWarp / 8) / 32;
    uint4 y_old[kPieces];
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8);
      const int64_t col = n_warp + q % (kColsPerWarp / 8) * 8;
      const bool whole = vector_y && !mod.sums && row < tile.count && col + 8 <= mod.out_dim;
      y_old[i] =
          whole ? *reinterpret_cast<const uint4*>(y + (tile.begin + row) * mod.y_ld + col) : make_uint4(0, 0, 0, 0);
    }
    float acc[kColGroups][4] = {};
    for (int k = 0; k < e.rank; k += 32) {
      const int kk = k + t4 * 8;
      const uint4 ag = *reinterpret_cast<const uint4*>(&sm.ts[g][kk]);
      const uint4 ah = *reinterpret_cast<const uint4*>(&sm.ts[g + 8][kk]);
      uint4 w[kColGroups];
#pragma unroll
      for (int j = 0; j < kColGroups; ++j) {
        const int64_t n = n_warp + j * 8 + g;
        w[j] = n < mod.out_dim ? load_b_word(e.b + n * e.rank, kk, e.rank, vector) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < kColGroups; ++j) mma_word(acc[j], ag, ah, w[j]);
    }
#pragma unroll
    for (int j = 0; j < kColGroups; ++j) {
      const int c = j * 8 + 2 * t4;
      sm.cs[warp][g][c] = acc[j][0];
      sm.cs[warp][g][c + 1] = acc[j][1];
      sm.cs[warp][g + 8][c] = acc[j][2];
      sm.cs[warp][g + 8][c + 1] = acc[j][3];
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kPieces; ++i) {
      const int q = lane + 32 * i, row = q / (kColsPerWarp / 8), c8 = q % (kColsPerWarp / 8) * 8;
      const int64_t col = n_warp + c8;
      if (row >= tile.count || col >= mod.out_dim) continue;
      const float* c = &sm.cs[warp][row][c8];
      if (mod.sums) {
        store_sums8(mod, tile.begin + row, col, c);
        continue;
      }
      bf16* dst = y + (tile.begin + row) * mod.y_ld + col;
      if (vector_y && col + 8 <= mod.out_dim) {
        float v[8];
        unpack8(y_old[i], v);
#pragma unroll
        for (int x = 0; x < 8; ++x) v[x] += c[x];
        store8(dst, v);
      } else {
        for (int x = 0; x < 8 && col + x < mod.out_dim; ++x)
          dst[x] = __float2bfloat16_rn(__bfloat162float(dst[x]) + c[x]);
      }
    }
    __syncwarp();
  }
}

// The bulk path (tiles of 1-2 rows: decode steps with different adapters), where the op is a stream over B that
// one mma row per tile cannot keep busy from registers: the block's B columns are contiguous ([out_dim, rank]
// rows), so one thread moves them into shared memory in bulk copies of up to 16 KB (stages of a multiple of 8
// columns, two in flight, begun before the previous kernel ends: B does not depend on it), and each thread owns
// columns and sums t B^T over the tile's rows on the CUDA cores (at one or two rows the products are free, the
// bytes are not). B not 16-byte aligned is read in place.
__device__ __forceinline__ int bulk_stage_cols(int rank) {
  return min(kColsPerBlock, kBulkStageBytes / (2 * rank) / 8 * 8);
}

__device__ __forceinline__ int bulk_stages(const ExpandTile& e) {
  const int stage_cols = bulk_stage_cols(e.rank);
  return static_cast<int>((e.n_end - e.n_begin + stage_cols - 1) / stage_cols);
}

__device__ __forceinline__ bool bulk_copies(const ExpandTile& e) {
  return (reinterpret_cast<uintptr_t>(e.b) & 15) == 0;
}

__device__ __forceinline__ void bulk_issue(const ExpandTile& e, ExpandSmem& sm, int j) {  // one thread: stage j
  const int stage_cols = bulk_stage_cols(e.rank);
  const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
  const auto bytes = static_cast<uint32_t>(min(static_cast<int64_t>(stage_cols), e.n_end - n0) * e.rank * 2);
  mbar_arrive_expect_tx(&sm.full[j % kBulkStages], bytes);
  bulk_copy(sm.stage[j % kBulkStages], e.b + n0 * e.rank, bytes, &sm.full[j % kBulkStages]);
}

__device__ __forceinline__ void bulk_begin(const ExpandTile& e, ExpandSmem& sm) {  // one thread, before pdl_wait
  if (!bulk_copies(e)) return;
  for (int s = 0; s < kBulkStages; ++s) mbar_init(&sm.full[s], 1);
  mbar_init_fence();
  const int stages = bulk_stages(e);
  for (int j = 0; j < stages && j < kBulkStages; ++j) bulk_issue(e, sm, j);
}

constexpr int kBulkColsPerThread = kColsPerBlock / kThreads;  // a stage has at most kColsPerBlock columns
static_assert(kColsPerBlock % kThreads == 0, "a bulk stage's columns spread evenly over the threads");

// A thread's old y values in stage j (its columns threadIdx.x + q kThreads, the tile's rows; zeros past them).
// y is the previous kernel's output, but not B's: loading a stage's y before waiting for its B (and the first
// stage's with t) lets the waits overlap.
struct BulkY {
  float v[kBulkColsPerThread][kThinRows];
};

__device__ __forceinline__ BulkY bulk_load_y(const LoraModuleArgs& mod, const ExpandTile& e, int j) {
  const int stage_cols = bulk_stage_cols(e.rank);
  const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
  const int cols = static_cast<int>(min(static_cast<int64_t>(stage_cols), e.n_end - n0));
  const bf16* y = static_cast<const bf16*>(mod.y) + e.tile.begin * mod.y_ld + n0;
  BulkY o;
#pragma unroll
  for (int q = 0; q < kBulkColsPerThread; ++q) {
    const int c = static_cast<int>(threadIdx.x) + q * kThreads;
#pragma unroll
    for (int r = 0; r < kThinRows; ++r)
      o.v[q][r] = c < cols && r < e.tile.count ? __bfloat162float(y[r * mod.y_ld + c]) : 0.0f;
  }
  return o;
}

// `first`: stage 0's y (bulk_load_y).
__device__ __forceinline__ void expand_bulk(const LoraModuleArgs& mod, const ExpandTile& e, ExpandSmem& sm,
                                            const BulkY& first) {
  const int stage_cols = bulk_stage_cols(e.rank), stages = bulk_stages(e);
  const bool copies = bulk_copies(e), vector_b = e.rank % 8 == 0;
  bf16* y = static_cast<bf16*>(mod.y);
  const TileRef& tile = e.tile;
  for (int j = 0; j < stages; ++j) {
    const int64_t n0 = e.n_begin + static_cast<int64_t>(j) * stage_cols;
    const int cols = static_cast<int>(min(static_cast<int64_t>(stage_cols), e.n_end - n0));
    const BulkY old = j == 0 || mod.sums ? first : bulk_load_y(mod, e, j);
    const bf16* bs = e.b + n0 * e.rank;  // generic pointer: the stage in shared memory, or B in place
    if (copies) {
      mbar_wait(&sm.full[j % kBulkStages], (j / kBulkStages) & 1);
      bs = reinterpret_cast<const bf16*>(sm.stage[j % kBulkStages]);
    }
#pragma unroll
    for (int q = 0; q < kBulkColsPerThread; ++q) {
      const int c = static_cast<int>(threadIdx.x) + q * kThreads;
      if (c >= cols) break;
      const bf16* row_b = bs + static_cast<int64_t>(c) * e.rank;
      bf16* yc = y + tile.begin * mod.y_ld + n0 + c;
      float acc[kThinRows] = {};
      for (int k = 0; k < e.rank; k += 8) {
        float w[8];
        if (vector_b) {
          unpack8(*reinterpret_cast<const uint4*>(row_b + k), w);
        } else {
#pragma unroll
          for (int x = 0; x < 8; ++x) w[x] = k + x < e.rank ? __bfloat162float(row_b[k + x]) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < kThinRows; ++r) {
          if (r >= tile.count) break;
          float t[8];
          unpack8(*reinterpret_cast<const uint4*>(&sm.ts[r][k]), t);
#pragma unroll
          for (int x = 0; x < 8; ++x) acc[r] += t[x] * w[x];
        }
      }
#pragma unroll
      for (int r = 0; r < kThinRows; ++r) {
        if (r >= tile.count) break;
        if (mod.sums) {
          mod.sums[(tile.begin + r) * mod.y_ld + n0 + c] = acc[r];
        } else {
          yc[r * mod.y_ld] = __float2bfloat16_rn(old.v[q][r] + acc[r]);
        }
      }
    }
    __syncthreads();  // the buffer is read; it may take stage j + 2
    if (copies && threadIdx.x == 0 && j + kBulkStages < stages) bulk_issue(e, sm, j + kBulkStages);
  }
}

// This block's unit when the batch has `tiles` tiles: the narrowest width whose units fit the grid (a batch of
// few tiles, tokens sharing an adapter, gets more blocks in flight). At the widest the grid's own (tile, chunk)
// indices are the unit; narrower widths number the units tiles fastest. No unit: tile -1.
__device__ __forceinline__ ExpandUnit expand_unit(const LoraArgs& p, const ExpandWidths& w, int tiles) {
  const int64_t blocks = static_cast<int64_t>(gridDim.x) * gridDim.y;
  int j = kWidths - 1;
#pragma unroll
  for (int i = kWidths - 2; i >= 0; --i)
    if (static_cast<int64_t>(tiles) * w.chunks[i] <= blocks) j = i;
  int tile = static_cast<int>(blockIdx.x), c = static_cast<int>(blockIdx.y);
  if (j < kWidths - 1 && tiles > 0) {
    const int linear = c * static_cast<int>(gridDim.x) + tile;
    c = linear / tiles;
    tile = linear - c * tiles;
  }
  ExpandUnit u;
  u.tile = tile < tiles && c < w.chunks[j] ? tile : -1;
  u.m = 0;
  while (u.m + 1 < p.num_modules && c >= w.first[j][u.m + 1]) ++u.m;
  u.n_begin = (c - w.first[j][u.m]) * w.cols[j];
  u.n_end = min(static_cast<int>(p.m[u.m].out_dim), u.n_begin + w.cols[j]);
  return u;
}

// Expand, block (tile, a run of columns of one module's output; expand_unit): y += t B^T, by the bulk path for
// tiles of up to kThinRows rows (when `bulk`) and the mma path for the rest, chosen per block so that a graph
// serves any mix. The block first sums the tile's t over the K splits into shared memory, rounded to bf16 (PEFT
// rounds the intermediate likewise), zeros past the rank (to a multiple of 32) and past the tile's rows.
// kDecode (steps of a segment per one or two tokens): the mma path at 32 columns, 4 blocks per SM; otherwise 64
// columns, 2 blocks per SM, which prefill chunks run faster with.
// History (bench/cuda_engine_notes.md, run 7): with every tile in the bulk path, shared adapters (16-row tiles)
// ran 15-18% slower than on the tensor cores; the bulk path as a second launch beside the mma kernel (each
// skipping the other's tiles) lost more to its empty blocks than it gained; in one kernel at 2 blocks per SM it
// gained nothing.
template <bool kDecode>
__global__ void __launch_bounds__(kThreads, kDecode ? 4 : 2)
    lora_expand_kernel(const __grid_constant__ LoraArgs p, const __grid_constant__ ExpandWidths widths, int splits,
                       const float* partial, bool bulk) {
  __shared__ ExpandSmem sm;
  ExpandTile e;
  e.tile = find_tile<true>(p, [&](int tiles) {  // warp 0, which hands the unit to the block
    const ExpandUnit unit = expand_unit(p, widths, tiles);
    if (threadIdx.x == 0) sm.unit = unit;
    return unit.tile;
  }, sm.tile_info);
  if (e.tile.count == 0) return idle_block_exit();
  const ExpandUnit u = sm.unit;
  e.m = u.m;
  const LoraModuleArgs& mod = p.m[e.m];
  const int32_t slot = p.seg_slot[e.tile.seg];
  e.rank = mod.ranks[slot];
  e.n_begin = u.n_begin;
  if (e.rank <= 0 || e.n_begin >= mod.out_dim) return idle_block_exit();
  e.n_end = u.n_end;
  e.b = static_cast<const bf16*>(mod.b[slot]);
  const bool thin = bulk && e.tile.count <= kThinRows;
  if (thin && threadIdx.x == 0) bulk_begin(e, sm);
  pdl_wait();
  pdl_launch_dependents();
  BulkY y0{};
  if (thin && !mod.sums) y0 = bulk_load_y(mod, e, 0);
  const int kpad = (e.rank + 31) / 32 * 32;
  const PartialLayout lay = partial_layout(p, splits);
  for (int i = threadIdx.x; i < kTile * kpad; i += kThreads) {
    const int row = i / kpad, c = i % kpad;
    float v = 0.0f;
    if (row < e.tile.count && c < e.rank) {
      const float* src = partial + (e.tile.begin + row) * lay.row_stride + e.m * lay.module_stride + c;
#pragma unroll
      for (int z = 0; z < kMaxSplits; ++z)
        if (z < splits) v += src[z * lay.split_stride];
    }
    sm.ts[row][c] = __float2bfloat16_rn(v);
  }
  __syncthreads();
  if (thin) {
    expand_bulk(mod, e, sm, y0);
  } else {
    expand_mma<kDecode ? 32 : 64>(mod, e, sm);
  }
}

}  // namespace

cudaError_t launch_lora_expand(const LoraArgs& p, const float* scratch, int num_sms, Stream stream) {
  if (p.num_segments == 0 || p.num_tokens == 0) return cudaSuccess;
  if (!launchable(p, scratch)) return cudaErrorInvalidValue;
  const Plan pl = plan_of(p, num_sms);
  const int chunks = pl.widths.chunks[kWidths - 1];
  if (chunks > 65535) return cudaErrorInvalidValue;
  return launch(pl.decode ? lora_expand_kernel<true> : lora_expand_kernel<false>,
                dim3(static_cast<unsigned>(pl.tiles), static_cast<unsigned>(chunks)), dim3(kThreads), 0, stream, p,
                pl.widths, pl.splits, scratch, pl.bulk);
}

}  // namespace ls::cuda
