// cpu_gemm.cpp: the GEMM driver of cpu_gemm.h: thread split, L2 row blocking, tiles.
#include "backend/cpu/cpu_gemm.h"

#include <algorithm>

namespace ls::cpu {
namespace {

// Bytes of x rows a block may hold: with a weight panel (up to 64 x K x 4 bytes) it should fit the 1-2 MiB L2.
constexpr int64_t kRowBlockBytes = 384 * 1024;
// Below this many multiply-adds a GEMM runs on the calling thread alone (a hand-off costs about a microsecond).
constexpr int64_t kParallelWork = 1 << 16;

}  // namespace

PanelSource PanelSource::packed(const PackedMatrix& m) {
  PanelSource s;
  s.format = m.format;
  s.base = static_cast<const char*>(m.data);
  s.panel_stride = m.panel_bytes();
  s.ldw = kPanelCols;
  s.k = m.cols;
  s.n = m.rows;
  s.scales = m.scales;
  return s;
}

PanelSource PanelSource::lora_bt(const void* bt, WeightFormat format, int64_t rank, int64_t out) {
  PanelSource s;
  s.format = format;
  s.base = static_cast<const char*>(bt);
  const int64_t rows = format == WeightFormat::kBF16 ? (rank + 1) / 2 * 2 : rank;
  s.panel_stride = static_cast<size_t>(kPanelCols * rows) * (format == WeightFormat::kBF16 ? 2 : 4);
  s.ldw = kPanelCols;
  s.last_ldw = out - (out - 1) / kPanelCols * kPanelCols;
  s.k = rank;
  s.n = out;
  return s;
}

void gemm_panels(const CpuKernels& kernels, const PanelSource& w, const float* x, int64_t ldx, int64_t rows,
                 const float* bias, float* y, int64_t ldy, bool accumulate, int64_t panel_begin, int64_t panel_end) {
  if (rows <= 0 || panel_begin >= panel_end) return;
  const int64_t max_rows = kernels.max_tile_rows;
  const int64_t block = std::max(max_rows, std::min(rows, kRowBlockBytes / std::max<int64_t>(1, w.k * 4)));
  auto* kernel = kernels.gemm[static_cast<int>(w.format)];
  for (int64_t m0 = 0; m0 < rows; m0 += block) {
    const int64_t mrows = std::min(block, rows - m0);
    const int64_t tiles = (mrows + max_rows - 1) / max_rows;
    for (int64_t p = panel_begin; p < panel_end; ++p) {
      GemmTile t;
      t.w = w.base + static_cast<size_t>(p) * w.panel_stride;
      t.ldw = p == (w.n - 1) / kPanelCols ? w.last_ldw : w.ldw;
      t.k = w.k;
      t.scale = w.scales ? w.scales + p * kPanelCols : nullptr;
      t.bias = bias ? bias + p * kPanelCols : nullptr;
      t.ncols = static_cast<int32_t>(std::min<int64_t>(kPanelCols, w.n - p * kPanelCols));
      t.ldx = ldx;
      t.ldy = ldy;
      t.accumulate = accumulate;
      for (int64_t i = 0; i < tiles; ++i) {  // balanced tiles: sizes differ by at most one row
        const int64_t begin = m0 + mrows * i / tiles, end = m0 + mrows * (i + 1) / tiles;
        t.x = x + begin * ldx;
        t.rows = static_cast<int32_t>(end - begin);
        t.y = y + begin * ldy + p * kPanelCols;
        kernel(t);
      }
    }
  }
}

void gemm(CpuThreadPool& pool, const CpuKernels& kernels, const PanelSource& w, const float* x, int64_t ldx,
          int64_t rows, const float* bias, float* y, int64_t ldy, bool accumulate) {
  const int64_t panels = (w.n + kPanelCols - 1) / kPanelCols;
  if (rows <= 0 || panels == 0) return;
  const int threads = pool.size();
  if (threads == 1 || rows * w.n * w.k < kParallelWork) {
    gemm_panels(kernels, w, x, ldx, rows, bias, y, ldy, accumulate, 0, panels);
    return;
  }
  if (panels < threads) {  // too few panels to share: the threads split the rows
    pool.parallel_for(rows, (rows + threads - 1) / threads, [&](int64_t m0, int64_t m1) {
      gemm_panels(kernels, w, x + m0 * ldx, ldx, m1 - m0, bias, y + m0 * ldy, ldy, accumulate, 0, panels);
    });
    return;
  }
  // Runs of consecutive panels (each one sequential weight stream), about four per thread, so a thread that
  // lost its core for a while (another process) delays the op by less.
  pool.parallel_for(panels, std::max<int64_t>(1, panels / (4 * threads)), [&](int64_t p0, int64_t p1) {
    gemm_panels(kernels, w, x, ldx, rows, bias, y, ldy, accumulate, p0, p1);
  });
}

}  // namespace ls::cpu
