// cpu_lora.cpp: the multi-LoRA op on the CPU, at each adapter's own rank. For every token of a segment with an
// adapter: shrink t = A x (lane-form dots, dot_rows_blocked), then expand y += B t as the GEMM tile over B^T, so
// the expand is rank FMAs per 16 outputs with no reductions. stage_lora lays A out in blocks of 16 ranks and
// B^T in panels of 64 outputs so that both are read as single sequential streams (a mixed batch reads every
// adapter it holds from memory each step); with bf16 or int8 weights they are bf16, half the bytes. Both passes
// run once per op over all segments on the pool: (segment, 16 ranks) items for the shrink, chunks of output
// panels for the expand. A token's result depends only on its own row and adapter (cpu_kernels.h orders),
// never on the segments around it.
#include <algorithm>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_gemm.h"

namespace ls {

namespace {

struct Segment {
  int32_t begin, rows, rank;
  const void* a;
  const void* bt;
};

// Below this many multiply-adds the op runs on the calling thread.
constexpr int64_t kParallelWork = 1 << 15;

}  // namespace

void CpuBackend::lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& weights, Tensor y) {
  if (!batch.has_lora || weights.num_slots == 0) return;
  LS_CHECK(x.cols == weights.in_dim && y.cols == weights.out_dim && x.rows == y.rows) << "lora shape mismatch";
  LS_CHECK(x.dtype == DType::kF32 && y.dtype == DType::kF32) << "cpu backend: lora in float32";
  std::vector<Segment> segs;
  int64_t work = 0;
  for (int32_t g = 0; g < batch.num_lora_segments; ++g) {
    const int32_t slot = batch.lora_seg_slot[g];
    if (slot < 0) continue;
    LS_CHECK(slot < weights.num_slots) << "lora slot " << slot << " beyond the slot table";
    const int32_t rank = weights.ranks[slot];
    if (rank == 0) continue;
    const int32_t begin = batch.lora_seg_start[g], n = batch.lora_seg_start[g + 1] - begin;
    segs.push_back({begin, n, rank, weights.a[slot], weights.b[slot]});
    work += static_cast<int64_t>(n) * rank * (weights.in_dim + weights.out_dim);
  }
  if (segs.empty()) return;
  const int64_t ld = weights.max_rank, in = weights.in_dim, out = weights.out_dim;
  std::vector<float> shrunk(static_cast<size_t>(x.rows * ld));
  const cpu::CpuKernels& k = *kernels_;
  const bool bf16 = lora_bf16();

  // Shrink: one item per (segment, block of 16 ranks), all of the segment's rows, so each block of A is read
  // once (the rows reuse it from cache) and threads read disjoint parts of A.
  std::vector<std::pair<int32_t, int32_t>> items;  // (segment, first rank)
  for (int32_t g = 0; g < static_cast<int32_t>(segs.size()); ++g)
    for (int32_t r = 0; r < segs[g].rank; r += 16) items.push_back({g, r});
  auto shrink = [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const Segment& s = segs[items[i].first];
      const int32_t r0 = items[i].second, nr = std::min(16, s.rank - r0);
      const float* xs = x.ptr<float>() + s.begin * x.ld;
      float* t = shrunk.data() + s.begin * ld + r0;
      if (bf16) {
        k.dot_rows_blocked_bf16(xs, x.ld, s.rows, static_cast<const uint16_t*>(s.a) + r0 * in, nr, in, t, ld);
      } else {
        k.dot_rows_blocked(xs, x.ld, s.rows, static_cast<const float*>(s.a) + r0 * in, nr, in, t, ld);
      }
    }
  };
  // Expand: chunks of output panels, every segment's rows for each.
  const int64_t panels = (out + cpu::kPanelCols - 1) / cpu::kPanelCols;
  auto expand = [&](int64_t p0, int64_t p1) {
    for (const Segment& s : segs) {
      const cpu::PanelSource bt = cpu::PanelSource::lora_bt(s.bt, bf16 ? cpu::WeightFormat::kBF16 : cpu::WeightFormat::kF32,
                                                            s.rank, out);
      cpu::gemm_panels(k, bt, shrunk.data() + s.begin * ld, ld, s.rows, nullptr, y.ptr<float>() + s.begin * y.ld, y.ld,
                       true, p0, p1);
    }
  };
  if (work < kParallelWork || pool_.size() == 1) {
    shrink(0, static_cast<int64_t>(items.size()));
    expand(0, panels);
    return;
  }
  pool_.parallel_for(static_cast<int64_t>(items.size()), 1, shrink);
  pool_.parallel_for(panels, std::max<int64_t>(1, panels / (4 * pool_.size())), expand);
}

}  // namespace ls
