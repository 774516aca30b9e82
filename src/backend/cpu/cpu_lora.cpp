// cpu_lora.cpp: the multi-LoRA op on the CPU, at each adapter's own rank. For every token of a segment with an
// adapter: shrink t = A x (dot_rows over the row-major A [rank, in], one lane-form dot per rank), then expand
// y += B t as a GEMM over B^T [rank, out] (upload_lora stores B transposed) read in place as k-major panels, so
// the expand is rank FMAs per 16 outputs with no reductions. Both passes run once per op over all segments
// on the pool: tokens split among threads for the shrink, output panels for the expand. A token's result
// depends only on its own row and adapter (cpu_kernels.h orders), never on the segments around it.
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
  const float* a;
  const float* bt;
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
    segs.push_back({begin, n, rank, static_cast<const float*>(weights.a[slot]), static_cast<const float*>(weights.b[slot])});
    rows += n;
    work += static_cast<int64_t>(n) * rank * (weights.in_dim + weights.out_dim);
  }
  if (segs.empty()) return;
  const int64_t ld = weights.max_rank, in = weights.in_dim, out = weights.out_dim;
  std::vector<float> shrunk(static_cast<size_t>(x.rows * ld));
  const cpu::CpuKernels& k = *kernels_;

  // Shrink: thread t takes active rows [rows * t / T, rows * (t + 1) / T) in segment order.
  auto shrink = [&](int t, int threads) {
    const int64_t lo = rows * t / threads, hi = rows * (t + 1) / threads;
    int64_t seen = 0;
    for (const Segment& s : segs) {
      const int64_t b = std::max<int64_t>(lo, seen), e = std::min<int64_t>(hi, seen + s.rows);
      if (b < e) {
        const int64_t r = s.begin + (b - seen);
        k.dot_rows(x.ptr<float>() + r * x.ld, x.ld, e - b, s.a, in, s.rank, in, shrunk.data() + r * ld, ld, false);
      }
      seen += s.rows;
    }
  };
  // Expand: thread t takes output panels [P * t / T, P * (t + 1) / T) of every segment.
  const int64_t panels = (out + cpu::kPanelCols - 1) / cpu::kPanelCols;
  auto expand = [&](int t, int threads) {
    const int64_t p0 = panels * t / threads, p1 = panels * (t + 1) / threads;
    for (const Segment& s : segs)
      cpu::gemm_panels(k, cpu::PanelSource::k_major_f32(s.bt, s.rank, out), shrunk.data() + s.begin * ld, ld, s.rows,
                       nullptr, y.ptr<float>() + s.begin * y.ld, y.ld, true, p0, p1);
  };
  if (work < kParallelWork || pool_.size() == 1) {
    shrink(0, 1);
    expand(0, 1);
    return;
  }
  const int threads = pool_.size();
  pool_.run([&](int t) { shrink(t, threads); });
  pool_.run([&](int t) { expand(t, threads); });
}

}  // namespace ls
