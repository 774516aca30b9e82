// cuda_gemm.h: CudaGemm, the projections out = x W^T (+ bias) through cuBLASLt (bf16 inputs, fp32 compute,
// bf16 or fp32 output, bias in the epilogue). One plan per shape: the heuristic's candidates (up to 32) are
// timed once on the real operands with cold L2 (outside graph capture) and the fastest is kept;
// CudaBackendOptions::gemm_tune kOff keeps the first, kWarm times them with warm L2, kSearch times 64 of them
// and each one's variants over K splits and reductions (cold).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"

namespace ls::cuda {

struct GemmArgs {
  const void* x = nullptr;  // [m, k] bf16, row stride ldx
  int64_t ldx = 0;
  const void* w = nullptr;  // [n, k] bf16
  int64_t ldw = 0;
  const void* bias = nullptr;  // [n] bf16 or null
  void* out = nullptr;      // [m, n] bf16 or float32
  int64_t ldo = 0;
  bool out_f32 = false;
  int64_t m = 0, n = 0, k = 0;
  int sm_target = 0;        // the SMs the product may count on (0: all; cuBLASLt's SM count target)
};

class CudaGemm {
 public:
  static Result<std::unique_ptr<CudaGemm>> create(cudaStream_t stream, size_t workspace_bytes,
                                                  CudaBackendOptions::GemmTune tune);
  ~CudaGemm();
  CudaGemm(const CudaGemm&) = delete;
  CudaGemm& operator=(const CudaGemm&) = delete;

  // How plans made from now on are chosen (plans made earlier stay).
  void set_tune(CudaBackendOptions::GemmTune tune);
  // Enqueues the product on the stream; `capturing` forbids tuning (no synchronization inside a graph).
  void run(const GemmArgs& args, bool capturing);
  // One line per plan made: its shape, the algorithm's configuration (cuBLASLt's ids) and its tuning time.
  std::vector<std::string> describe() const;

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, int, int>;
  struct Plan;
  CudaGemm(cudaStream_t stream, cublasLtHandle_t handle, void* workspace, size_t workspace_bytes,
           CudaBackendOptions::GemmTune tune);
  Plan& plan_for(const GemmArgs& args, bool capturing);
  void tune(Plan& plan, const GemmArgs& args, const std::vector<cublasLtMatmulAlgo_t>& candidates);
  std::vector<cublasLtMatmulAlgo_t> variants(const Plan& plan, const std::vector<cublasLtMatmulAlgo_t>& seeds) const;
  void enqueue(const Plan& plan, const GemmArgs& args, const cublasLtMatmulAlgo_t& algo);

  cudaStream_t stream_;
  cublasLtHandle_t handle_;
  void* workspace_;
  size_t workspace_bytes_;
  bool tune_;
  bool search_ = false;    // GemmTune::kSearch: each heuristic candidate's K split variants timed too (variants)
  bool cold_;              // tune with L2 swept before each timed launch (GemmTune::kWarm: not)
  void* flush_ = nullptr;  // evicts L2 between tuning launches (allocated at the first tuning)
  size_t flush_bytes_ = 0;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace ls::cuda
