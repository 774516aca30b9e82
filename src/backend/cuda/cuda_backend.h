// cuda_backend.h: CudaBackend, the GPU backend: bf16 weights and activations, fp32 accumulation and softmax,
// fp32 logits. Every op is queued on one stream (the projections through cuBLASLt or, for 1-4 rows, our
// weight-streaming GEMV; everything else through kernels/), batch metadata arrives through one pinned staging
// copy, and ops can be recorded into CUDA graphs. make_cuda_backend fails with kUnavailable without a GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_gemm.h"
#include "backend/cuda/cuda_staging.h"

namespace ls {

Result<std::unique_ptr<Backend>> make_cuda_backend();

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<CudaBackend>> create();
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  DType compute_dtype() const override { return DType::kBF16; }

  MemoryInfo memory_info() const override;
  Result<Buffer> allocate(size_t bytes) override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void upload_f32(void* dst, const float* src, size_t n) override;
  void synchronize() override;
  void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) override;
  BatchMeta upload_batch(const BatchMeta& host) override;

  void embedding(const BatchMeta& batch, Tensor table, Tensor out) override;
  void rms_norm(Tensor x, Tensor weight, float eps, Tensor out) override;
  void add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) override;
  void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) override;
  void rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) override;
  void kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) override;
  void rope_kv_write(const BatchMeta& batch, Tensor q, Tensor k, Tensor v, const float* inv_freq, int64_t head_dim,
                     const KvLayer& cache) override;
  void attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                 Tensor out) override;
  void silu_mul(Tensor gate_up, Tensor out) override;
  void linear_silu_mul(Tensor x, Tensor weight, Tensor bias, Tensor gate_up, Tensor out) override;
  void lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& weights, Tensor y) override;
  void gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) override;
  void argmax(Tensor logits, int32_t* tokens) override;
  void sample(Tensor logits, const SamplingParams* params, int32_t* tokens) override;
  void apply_penalties(Tensor logits, const TokenCounts& counts) override;
  void logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                float* top_logprobs) override;

  bool supports_graphs() const override { return true; }
  Status begin_capture() override;
  Result<std::unique_ptr<OpGraph>> end_capture() override;

  // ---- CUDA-only, for tests and the benchmark ----
  cudaStream_t stream() const { return stream_; }
  int num_sms() const { return num_sms_; }
  // Whether linear() takes the weight-streaming GEMV for 1-4 rows (default on; LS_CUDA_GEMV=0 turns it off).
  void set_gemv_enabled(bool on) { gemv_enabled_ = on; }
  bool gemv_enabled() const { return gemv_enabled_; }
  // When linear() and linear_silu_mul() take the weight-streaming skinny GEMM (skinny_gemm.cu, 5-64 rows) instead
  // of cuBLASLt: kAuto (default) where it measured faster on the H100 (skinny_gemm_preferred; the fused gate/up
  // SiLU product always), kAll wherever it applies (LS_CUDA_SKINNY=1), kOff never (LS_CUDA_SKINNY=0).
  enum class SkinnyMode { kOff, kAuto, kAll };
  void set_skinny_mode(SkinnyMode mode) { skinny_mode_ = mode; }
  SkinnyMode skinny_mode() const { return skinny_mode_; }

 private:
  CudaBackend() = default;
  // Float32 scratch of at least n values that stays put while a graph is being captured.
  float* scratch(Buffer& buffer, size_t n);
  // The same, zero-filled when (re)allocated; kernels that use it leave it zero.
  float* zeroed_scratch(Buffer& buffer, size_t n);
  // Sampling through the host reference (cuda_sampling_host.cpp), for what the kernels do not cover yet.
  void sample_on_host(Tensor logits, const SamplingParams* params, int32_t* tokens);

  int device_ = 0;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  bool capturing_ = false;
  bool gemv_enabled_ = true;
  SkinnyMode skinny_mode_ = SkinnyMode::kAuto;
  std::unique_ptr<cuda::CudaGemm> gemm_;
  cuda::StagedUpload batch_upload_;
  cuda::StagedUpload params_upload_;
  Buffer convert_staging_;    // float32 chunk of upload_f32
  Buffer attention_scratch_;  // decode split partials
  Buffer arrivals_;           // split arrival counters (attention, skinny GEMM), zero between launches
  Buffer skinny_accumulator_; // skinny GEMM split-K partial sums
  Buffer lora_scratch_;       // shrunk LoRA activations
  std::vector<Buffer> retired_scratch_;  // outgrown scratch, kept: graphs recorded earlier still point at it
};

// The backend as a CudaBackend, or null when it is another backend.
CudaBackend* as_cuda_backend(Backend& backend);

}  // namespace ls
