// lora.cu: the multi-LoRA op for 1-3 modules that share x, in two launches (shrink, expand: lora_shrink.cu and
// lora_expand.cu, sharing lora_common.cuh); here its launch plan, argument checks and the deltas other kernels add.
//
// Tiles. The batch's segments (runs of tokens with one adapter slot; a decode step's tokens are segments of
// their own) are cut into tiles of up to 16 tokens, one mma M. Base-only segments (slot -1) have no tiles. The
// grid's x dimension is an upper bound on the tile count from host scalars (segments + tokens / 16), and each
// block finds its tile by a warp scan over the segments (128 a round, one wait for memory), so CUDA graphs replay
// the same grid for any mix of adapters, ranks and segment lengths; blocks past the last tile, and tiles whose
// slot has rank 0 for their module, return at once. A segment scan that reaches the last token stops there (a
// decode graph pads its segment list with empty ones).
//
// Shrink, block (tile, module, K split): t = x A^T. 8 warps, each a slice of K; per 64-wide K chunk a lane loads
// 32 bytes of its x rows (g, g + 8) and of its A rows (rank g of each 8-rank group) straight from global memory
// into mma fragments: the 16 physical k a lane holds are spread over the logical k of four m16n8k16 products
// the same way for x and A, so the sum over k is unchanged (x rows are the mma rows, ranks the columns). Ranks
// go in passes of 16 (2 groups; a group past the slot's rank skips its loads and products); A does not depend on
// the previous kernel, so its first words load before the PDL wait and each chunk's loop fetches the next
// chunk's. The 8 warps' fp32 sums meet in shared memory; the block writes its K split's partial t [tile tokens,
// rank] in fp32.
//
// Expand, block (tile, a run of columns of one module's output): y += t B^T, with t summed over the K splits and
// rounded to bf16 (PEFT rounds the intermediate likewise), y read and written once (one rounding). The grid has a
// block per tile bound and 512-column run; a batch with few tiles (tokens sharing an adapter) spreads the same
// blocks over runs a half or a quarter as wide, so that more of them work.
// Tiles of many rows take the tensor cores; tiles of one or two rows (decode steps with different adapters)
// stream B into shared memory by bulk copies on the tensor memory accelerator and sum on the CUDA cores.
//
// Decode with distinct adapters is bound by the adapters' bytes (A and B read once per token); the K splits give
// a step with one shared adapter enough blocks to stream it. The shrink reads only x, so linear_lora may run it
// beside the projection; the expand adds into the projection's output and follows both, or (LoraModuleArgs::sums)
// writes its fp32 sums apart, beside the projection too, for the kernel that reads the output next.
#include <algorithm>

#include "backend/cuda/kernels/lora_common.cuh"

namespace ls::cuda {
namespace {

using lora_detail::kChunk;
using lora_detail::kWarps;

// K cut about `want` ways: each warp's slice in whole chunks, and the splits that slice leaves (none empty).
struct KSplit {
  int splits, slice;
};
KSplit split_k(int64_t in_dim, int64_t want) {
  const int64_t per_warp = (in_dim + want * kWarps - 1) / (want * kWarps);
  const int64_t slice = (per_warp + kChunk - 1) / kChunk * kChunk;
  return {static_cast<int>((in_dim + kWarps * slice - 1) / (kWarps * slice)), static_cast<int>(slice)};
}

}  // namespace

namespace lora_detail {

// The grid, from host scalars only: an upper bound on the tiles; K splits so that a batch whose tokens all share
// one adapter (the fewest tiles) still fills half the SMs, each warp's slice at least two chunks, and fewer for thin
// tiles (lora_shrink_kernel), or one split where the args ask (one_split); and for the expand, runs of 512-column
// chunks per block so that the grid is about one wave at the most tiles.
Plan plan_of(const LoraArgs& p, int num_sms) {
  Plan pl;
  pl.tiles = static_cast<int>(std::min<int64_t>(p.num_tokens, p.num_segments + p.num_tokens / kTile));
  const int64_t fewest_tiles = (static_cast<int64_t>(p.num_tokens) + kTile - 1) / kTile;
  const int64_t fewest = fewest_tiles * p.num_modules;
  const int64_t by_k = std::max<int64_t>(p.in_dim / (kWarps * 2 * kChunk), 1);
  int64_t s = (num_sms / 2 + fewest - 1) / fewest;
  s = p.one_split ? 1 : std::min<int64_t>({s, by_k, kMaxSplits});
  const KSplit k = split_k(p.in_dim, std::max<int64_t>(s, 1));
  pl.splits = k.splits;
  pl.slice = k.slice;
  // Thin tiles: as few splits as keep about one wave of the shrink's 3 blocks per SM busy at the most tiles.
  const int64_t thin = (3 * static_cast<int64_t>(num_sms)) / std::max<int64_t>(int64_t{pl.tiles} * p.num_modules, 1);
  const KSplit t = split_k(p.in_dim, std::clamp<int64_t>(thin, 1, pl.splits));
  pl.thin_splits = t.splits;
  pl.thin_slice = t.slice;
  // Decode steps (a segment per one or two tokens) take the expand kernel built for them.
  pl.decode = 2 * static_cast<int64_t>(p.num_segments) >= p.num_tokens;
  // Columns per block, from the count of blocks that a run of `cols` columns gives at the most tiles (each
  // module's last run may be short, so it is counted per module); a batch of fewer tiles takes narrower runs of
  // the same grid (expand_unit). The decode build runs 4 blocks per SM, each streaming its B in stages.
  const int64_t slots = 4 * static_cast<int64_t>(num_sms);
  const auto blocks_at = [&](int64_t cols) {
    int64_t runs = 0;
    for (int m = 0; m < p.num_modules; ++m) runs += (p.m[m].out_dim + cols - 1) / cols;
    return pl.tiles * runs;
  };
  int run_chunks = 1;
  if (pl.decode) {
    // Decode: the narrowest run whose grid fits one wave (128 distinct adapters: q/k/v take 2048 columns, 512
    // blocks, where the rounded-up average gave 1536 and a second wave of 112 blocks; H200 runs 80-82: 0.7-2%
    // faster steps in each of five pairs).
    while (run_chunks < kMaxRunChunks && blocks_at(int64_t{kColsPerBlock} * run_chunks) > slots) ++run_chunks;
  } else {
    // Prefill chunks: about a wave on average, at most 8 chunks (as measured for them).
    run_chunks = static_cast<int>(std::clamp<int64_t>((blocks_at(kColsPerBlock) + slots - 1) / slots, 1, 8));
  }
  const int wide = kColsPerBlock * run_chunks;
  // Thin tiles may take the bulk path, which copies whole 16-byte words of B columns (out_dim a multiple of 8).
  pl.bulk = p.bulk_expand;
  for (int m = 0; m < p.num_modules; ++m) pl.bulk = pl.bulk && p.m[m].out_dim % 8 == 0;
  for (int j = 0; j < kWidths; ++j) {
    // wide / 16, ..., wide, at least kMinCols (half the decode build's mma step; narrower ran slower)
    const int cols = std::max(wide >> (kWidths - 1 - j), kMinCols);
    pl.widths.cols[j] = cols;
    pl.widths.first[j][0] = 0;
    for (int m = 0; m < kLoraMaxModules; ++m)
      pl.widths.first[j][m + 1] =
          pl.widths.first[j][m] + (m < p.num_modules ? static_cast<int32_t>((p.m[m].out_dim + cols - 1) / cols) : 0);
    pl.widths.chunks[j] = pl.widths.first[j][p.num_modules];
  }
  return pl;
}

bool launchable(const LoraArgs& p, const float* scratch) {
  return lora_supported(p) && p.seg_start && p.seg_slot && scratch;
}

}  // namespace lora_detail

using namespace lora_detail;

bool lora_supported(const LoraArgs& p) {
  if (p.num_modules < 1 || p.num_modules > kLoraMaxModules) return false;
  if (p.in_dim <= 0 || p.in_dim % 8 != 0 || p.x_ld % 8 != 0 || !aligned16(p.x)) return false;
  for (int m = 0; m < p.num_modules; ++m) {
    const LoraModuleArgs& a = p.m[m];
    if (!a.a || !a.b || !a.ranks || !a.y || a.out_dim <= 0 || a.out_dim >= (int64_t{1} << 30) || a.y_ld < a.out_dim)
      return false;
  }
  return true;
}

int64_t lora_scratch_floats(const LoraArgs& p, int num_sms) {
  const PartialLayout l = partial_layout(p, plan_of(p, num_sms).splits);
  return l.splits * l.split_stride;
}

bool lora_delta(const LoraArgs& a, const void* out, int64_t out_ld, int64_t out_cols, const float* scratch,
                int num_sms, LoraDelta& d) {
  const PartialLayout l = partial_layout(a, plan_of(a, num_sms).splits);
  d.seg_start = a.seg_start;
  d.seg_slot = a.seg_slot;
  d.num_segments = a.num_segments;
  d.num_slots = a.num_slots;
  d.t = scratch;
  d.splits = l.splits;
  d.split_stride = l.split_stride;
  d.row_stride = l.row_stride;
  d.module_stride = l.module_stride;
  d.num_modules = a.num_modules;
  for (int j = 0; j < a.num_modules; ++j) {
    const LoraModuleArgs& mod = a.m[j];
    const auto offset = static_cast<const bf16*>(mod.y) - static_cast<const bf16*>(out);
    if (mod.y_ld != out_ld || offset < 0 || offset + mod.out_dim > out_cols) return false;
    d.m[j].b = mod.b;
    d.m[j].ranks = mod.ranks;
    d.m[j].col_begin = offset;
    d.m[j].col_end = offset + mod.out_dim;
  }
  return true;
}

bool lora_delta_sums(LoraArgs& a, float* sums, LoraDelta& d) {
  const int64_t ld = a.num_modules > 0 ? a.m[0].y_ld : 0;
  if (!sums || !aligned16(sums) || ld % 4 != 0) return false;
  for (int j = 0; j < a.num_modules; ++j) a.m[j].sums = sums + d.m[j].col_begin;
  d.sums = sums;
  d.sums_ld = ld;
  return true;
}

bool lora_delta_aligned(const LoraDelta& d) {
  for (int j = 0; j < d.num_modules; ++j)
    if (d.m[j].col_begin % 8 != 0 || d.m[j].col_end % 8 != 0) return false;
  return true;
}

bool lora_delta_launchable(const LoraDelta& d, int64_t cols, bool vec) {
  if (!vec || !d.seg_start || !d.seg_slot || d.num_modules < 1 || d.num_modules > kLoraMaxModules ||
      d.module_stride > kLoraMaxRank || !lora_delta_aligned(d))
    return false;
  if (d.sums ? d.sums_ld % 4 != 0 || d.sums_ld < cols || !aligned16(d.sums)
             : !d.t || d.splits < 1 || d.splits > kLoraMaxShrinkSplits)
    return false;
  for (int j = 0; j < d.num_modules; ++j)
    if (!d.m[j].b || !d.m[j].ranks || d.m[j].col_begin < 0 || d.m[j].col_end > cols) return false;
  return true;
}

cudaError_t launch_lora(const LoraArgs& p, float* scratch, int num_sms, Stream stream) {
  const cudaError_t e = launch_lora_shrink(p, scratch, num_sms, stream);
  return e != cudaSuccess ? e : launch_lora_expand(p, scratch, num_sms, stream);
}

}  // namespace ls::cuda
