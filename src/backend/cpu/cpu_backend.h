// cpu_backend.h: CpuBackend, the float32 reference backend. Memory is host memory; ops run synchronously,
// GEMMs through OpenBLAS and the rest on OpenMP threads. Its ops are the CPU twins every CUDA op is tested
// against.
#pragma once

#include "backend/backend.h"

namespace ls {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads);
  std::string name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::kF32; }

  MemoryInfo memory_info() const override;
  Result<Buffer> allocate(size_t bytes) override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void upload_f32(void* dst, const float* src, size_t n) override;
  void synchronize() override {}
  void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) override;
  BatchMeta upload_batch(const BatchMeta& host) override { return host; }

  void embedding(const BatchMeta& batch, Tensor table, Tensor out) override;
  void rms_norm(Tensor x, Tensor weight, float eps, Tensor out) override;
  void add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) override;
  void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) override;
  void rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) override;
  void kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) override;
  void attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                 Tensor out) override;
  void silu_mul(Tensor gate_up, Tensor out) override;
  void lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& weights, Tensor y) override;
  void gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) override;
  void argmax(Tensor logits, int32_t* tokens) override;
  void sample(Tensor logits, const SamplingParams* params, int32_t* tokens) override;
  void apply_penalties(Tensor logits, const TokenCounts& counts) override;
  void logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                float* top_logprobs) override;

 private:
  int num_threads_;
};

// y[rows x n] (+)= x[rows x k] * w[n x k]^T, all float32 row-major with leading dimensions; beta 0 or 1.
void cpu_gemm_nt(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int64_t rows,
                 int64_t n, int64_t k, float beta);

// The sampling ops on one row of host float32 logits: the CPU backend's implementation, and the host path of a
// backend that has no kernel for an op.
int32_t sample_row_host(const float* row, int64_t n, const SamplingParams& p);
void apply_penalties_host(float* logits, int64_t ld, int64_t cols, const TokenCounts& counts);
void logprobs_row_host(const float* row, int64_t n, int32_t target, int32_t top_n, float* logprob, int32_t* top_ids,
                       float* top_logprobs);

}  // namespace ls
