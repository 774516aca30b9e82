// cpu_gemm.h: the CPU GEMM driver, y = x W^T over panels of 64 output columns (packed weights, or LoRA's
// B^T read in place). The pool's threads take runs of panels from a shared counter (or, with fewer panels
// than threads, split the rows); a thread blocks the rows so a block of x stays in L2 while its panels stream
// past, and cuts each block into tiles of at most max_tile_rows rows. Every output element is computed by
// one kernel call in the fixed order of cpu_kernels.h, so none of these choices changes a bit of the result.
#pragma once

#include <cstdint>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_thread_pool.h"
#include "backend/cpu/cpu_weights.h"

namespace ls::cpu {

// Where the GEMM finds panel p (output columns 64p ..): base + p * panel_stride bytes, k-rows ldw elements apart
// (last_ldw in the last panel).
struct PanelSource {
  WeightFormat format = WeightFormat::kF32;
  const char* base = nullptr;
  size_t panel_stride = 0;
  int64_t ldw = kPanelCols;
  int64_t last_ldw = kPanelCols;
  int64_t k = 0;                 // reduction length (in_features)
  int64_t n = 0;                 // output columns
  const float* scales = nullptr;  // kI8: 64 per panel

  static PanelSource packed(const PackedMatrix& m);
  // LoRA's B^T [rank, out] as CpuBackend::stage_lora lays it out: panels of 64 output columns, each k-major
  // ([rank][width], bf16 in rank pairs: [ceil(rank / 2)][width][2]), the last one as wide as the columns left.
  // Its last panel is read up to kOverreadBytes past the end.
  static PanelSource lora_bt(const void* bt, WeightFormat format, int64_t rank, int64_t out);
};

// y[m][c] (accumulate ? y[m][c] + v : v), v = x[m] . w_c (* scale_c) (+ bias[c]) for m < rows, c < w.n.
void gemm(CpuThreadPool& pool, const CpuKernels& kernels, const PanelSource& w, const float* x, int64_t ldx,
          int64_t rows, const float* bias, float* y, int64_t ldy, bool accumulate);
// The same for panels [panel_begin, panel_end) only, on the calling thread.
void gemm_panels(const CpuKernels& kernels, const PanelSource& w, const float* x, int64_t ldx, int64_t rows,
                 const float* bias, float* y, int64_t ldy, bool accumulate, int64_t panel_begin, int64_t panel_end);

}  // namespace ls::cpu
