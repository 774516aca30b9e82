// cpu_lora.cpp: the multi-LoRA op on the CPU, at each adapter's own rank. For every token of a segment with an
// adapter: shrink t = A x (dot_rows over the row-major A [rank, in], one lane-form dot per rank), then expand
// y += B t as a GEMM over B^T [rank, out] (upload_lora stores B transposed) read in place as k-major panels, so
// the expand is rank FMAs per 16 outputs with no reductions. With bf16 or int8 weights A and B^T are bf16
// (half the bytes a mixed batch streams per adapter), converted in registers like the weights. Both passes
// run once per op over all segments on the pool: chunks of tokens for the shrink, of output panels for the
// expand. A token's result depends only on its own row and adapter (cpu_kernels.h orders), never on the
// segments around it.
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_gemm.h"

namespace ls {

const char* lora_module_name(LoraModule module) {
  static const char* const kNames[kNumLoraModules] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"};
  return kNames[static_cast<int>(module)];
}

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
  int64_t rows = 0, work = 0;
  for (int32_t g = 0; g < batch.num_lora_segments; ++g) {
    const int32_t slot = batch.lora_seg_slot[g];
    if (slot < 0) continue;
    LS_CHECK(slot < weights.num_slots) << "lora slot " << slot << " beyond the slot table";
    const int32_t rank = weights.ranks[slot];
    if (rank == 0) continue;
    const int32_t begin = batch.lora_seg_start[g], n = batch.lora_seg_start[g + 1] - begin;
    segs.push_back({begin, n, rank, weights.a[slot], weights.b[slot]});
    rows += n;
    work += static_cast<int64_t>(n) * rank * (weights.in_dim + weights.out_dim);
  }
  if (segs.empty()) return;
  const int64_t ld = weights.max_rank, in = weights.in_dim, out = weights.out_dim;
  std::vector<float> shrunk(static_cast<size_t>(x.rows * ld));
  const cpu::CpuKernels& k = *kernels_;
  const bool bf16 = lora_bf16();

  // Shrink: chunks of the active rows, in segment order.
  auto shrink = [&](int64_t lo, int64_t hi) {
    int64_t seen = 0;
    for (const Segment& s : segs) {
      const int64_t b = std::max<int64_t>(lo, seen), e = std::min<int64_t>(hi, seen + s.rows);
      if (b < e) {
        const int64_t r = s.begin + (b - seen);
        const float* xr = x.ptr<float>() + r * x.ld;
        if (bf16) {
          k.dot_rows_bf16(xr, x.ld, e - b, static_cast<const uint16_t*>(s.a), in, s.rank, in, shrunk.data() + r * ld, ld, false);
        } else {
          k.dot_rows(xr, x.ld, e - b, static_cast<const float*>(s.a), in, s.rank, in, shrunk.data() + r * ld, ld, false);
        }
      }
      seen += s.rows;
    }
  };
  // Expand: chunks of output panels, every segment's rows for each.
  const int64_t panels = (out + cpu::kPanelCols - 1) / cpu::kPanelCols;
  auto expand = [&](int64_t p0, int64_t p1) {
    for (const Segment& s : segs) {
      const cpu::PanelSource bt = bf16 ? cpu::PanelSource::k_major_bf16(static_cast<const uint16_t*>(s.bt), s.rank, out)
                                       : cpu::PanelSource::k_major_f32(static_cast<const float*>(s.bt), s.rank, out);
      cpu::gemm_panels(k, bt, shrunk.data() + s.begin * ld, ld, s.rows, nullptr, y.ptr<float>() + s.begin * y.ld, y.ld,
                       true, p0, p1);
    }
  };
  if (work < kParallelWork || pool_.size() == 1) {
    shrink(0, rows);
    expand(0, panels);
    return;
  }
  pool_.parallel_for(rows, 1, shrink);
  pool_.parallel_for(panels, std::max<int64_t>(1, panels / (4 * pool_.size())), expand);
}

}  // namespace ls
