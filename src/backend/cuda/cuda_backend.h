// cuda_backend.h: CudaBackend, the GPU backend: bf16 weights and activations, fp32 accumulation and softmax,
// fp32 logits. Every op is queued on one stream (the projections through cuBLASLt or, for 1-4 rows, our
// weight-streaming GEMV, which takes the projection's LoRA into its launch; everything else through kernels/),
// except that a LoRA's shrink (and in decode steps its expand, into fp32 sums that the next kernel adds) runs on a
// side branch beside a larger projection (linear_beside); batch metadata arrives
// through one pinned staging copy, and ops can be recorded into CUDA graphs. make_cuda_backend fails with
// kUnavailable without a GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_gemm.h"
#include "backend/cuda/cuda_staging.h"
#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/stream.h"

namespace ls {

Result<std::unique_ptr<Backend>> make_cuda_backend(const CudaBackendOptions& options = {});

class CudaBackend final : public Backend {
 public:
  static Result<std::unique_ptr<CudaBackend>> create(const CudaBackendOptions& options = {});
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
  void lora_group(const BatchMeta& batch, Tensor x, const LoraModuleWeights* weights, const Tensor* ys,
                  int n) override;
  void linear_lora(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor out,
                   const LoraModuleWeights* lora, const Tensor* ys, int n) override;
  void linear_lora_silu_mul(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor gate_up, Tensor out,
                            const LoraModuleWeights* lora, const Tensor* ys, int n) override;
  void linear_lora_add_rms_norm(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor y,
                                const LoraModuleWeights* lora, const Tensor* ys, int n, Tensor residual,
                                Tensor norm_weight, float eps, Tensor out) override;
  void linear_lora_rope_kv_write(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor qkv,
                                 const LoraModuleWeights* lora, const Tensor* ys, int n, Tensor q, Tensor k, Tensor v,
                                 const float* inv_freq, int64_t head_dim, const KvLayer& cache) override;
  void gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) override;
  void argmax(Tensor logits, int32_t* tokens) override;
  void sample(Tensor logits, const SamplingParams* params, int32_t* tokens) override;
  void apply_penalties(Tensor logits, const TokenCounts& counts) override;
  void logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                float* top_logprobs) override;

  Result<Buffer> allocate_host(size_t bytes) override;
  uint64_t copy_beside(const HostCopy* copies, size_t n, CopyAfter after) override;
  bool copies_done(uint64_t fence) override { return copy_fences_.done(fence); }
  void wait_copies(uint64_t fence) override { copy_fences_.wait(fence); }
  uint64_t ops_fence() override;
  bool ops_done(uint64_t fence) override { return op_fences_.done(fence); }

  bool supports_graphs() const override { return true; }
  bool lora_shared_kernels() const override { return options_.lora_shared; }
  Status begin_capture() override;
  Result<std::unique_ptr<OpGraph>> end_capture() override;

  // ---- CUDA-only, for tests and the benchmark ----
  cudaStream_t stream() const { return stream_; }
  int num_sms() const { return num_sms_; }
  const CudaBackendOptions& options() const { return options_; }
  // Switches kernel paths (tests and bench/engine_bench compare them). Graphs keep the paths they recorded.
  void set_options(const CudaBackendOptions& options);
  // The cuBLASLt plans made so far, one line each (CudaGemm::describe).
  std::vector<std::string> gemm_plans() const;

 private:
  CudaBackend() = default;
  // Where launchers queue kernels: the op stream, with PDL as the options say.
  cuda::Stream launch_stream() const { return {stream_, options_.pdl}; }
  // The LoRA kernels' arguments for modules w[0..n) (those with slots) over x; false when there is nothing to do.
  bool lora_args(const BatchMeta& batch, Tensor x, const LoraModuleWeights* w, const Tensor* ys, int n,
                 cuda::LoraArgs& a) const;
  // linear() on `sms` of the GPU's SMs (the skinny GEMM's grid, cuBLASLt's SM count target; the GEMV takes all).
  void project(Tensor x, Tensor weight, Tensor bias, Tensor out, int sms);
  // Whether a projection of x by weight takes the GEMV (gemv_rows, and its operands).
  bool gemv_takes(Tensor x, Tensor weight) const;
  // Whether linear_silu_mul's product takes the fused skinny kernel (its shapes checked first).
  bool silu_fused(Tensor x, Tensor weight, Tensor out) const;
  // Whether linear_lora takes the GEMV with the LoRA in its launch.
  bool gemv_lora(const cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor out) const;
  // The projection out = x weight^T + bias with the LoRA's shrink beside it, and with `expand` its expand after the
  // shrink on the same branch (into the sums lora_delta_sums set); returns the shrink's scratch (t). The stream's
  // next kernel follows both branches.
  float* linear_beside(const cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor bias, Tensor out, bool expand);
  // Whether the kernel reading the projection out adds its LoRA deltas (decode steps: lora_sums_beside, else
  // lora_into_norm where `into`); fills d for that kernel, and with sums points a's expand at them. Then
  // linear_beside(a, ..., d.sums != nullptr) queues the projection and sets d.t.
  bool lora_deferral(cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor out, bool into, cuda::LoraDelta& d);
  // Whether a step takes the shared-adapter kernels (BatchMeta::lora_shared, with lora_shared and lora_overlap):
  // then `one` is a with the shrink in one K split (LoraArgs::one_split) and d the deltas from its t for the kernel
  // reading out; the caller checks that kernel's support, then linear_beside(one, ..., false) sets d.t.
  bool lora_shared_deferral(const BatchMeta& batch, const cuda::LoraArgs& a, Tensor out, cuda::LoraArgs& one,
                            cuda::LoraDelta& d);
  // Scratch for the LoRA kernels' shrink partial sums over `a` (launch_lora and its two halves).
  float* lora_partials(const cuda::LoraArgs& a);
  // Float32 scratch of at least n values that stays put while a graph is being captured.
  float* scratch(Buffer& buffer, size_t n);
  // The same, zero-filled when (re)allocated; kernels that use it leave it zero.
  float* zeroed_scratch(Buffer& buffer, size_t n);

  int device_ = 0;
  int num_sms_ = 0;
  cudaStream_t stream_ = nullptr;
  // A second branch of the op stream (linear_lora's shrink): forked from and joined back into stream_ by events.
  cudaStream_t side_stream_ = nullptr;
  cudaEvent_t fork_event_ = nullptr, join_event_ = nullptr;
  bool capturing_ = false;
  CudaBackendOptions options_;
  std::unique_ptr<cuda::CudaGemm> gemm_;
  cuda::StagedUpload batch_upload_;
  cuda::StagedUpload params_upload_;
  cuda::StagedUpload penalty_upload_;  // apply_penalties' token counts
  Buffer convert_staging_;    // float32 chunk of upload_f32
  Buffer attention_scratch_;  // decode split partials
  Buffer arrivals_;           // split arrival counters (attention, skinny GEMM), zero between launches
  Buffer skinny_accumulator_; // skinny GEMM split-K partial sums
  Buffer lora_scratch_;       // LoRA shrink partial sums
  Buffer lora_sums_;          // LoRA expand sums beside the projection (lora_sums_beside)
  Buffer lora_counters_;      // the GEMV with LoRA: its 2 counters, zero between launches
  std::vector<Buffer> retired_scratch_;  // outgrown scratch, kept: graphs recorded earlier still point at it
  // Fences in one stream's order: events recorded on it, numbered ascending, those in flight kept in order (an
  // event done means every one before it is), with spare events for reuse.
  class StreamFences {
   public:
    StreamFences() = default;
    StreamFences(const StreamFences&) = delete;
    StreamFences& operator=(const StreamFences&) = delete;
    ~StreamFences();
    uint64_t record(cudaStream_t stream);  // after the work queued on `stream` so far
    bool done(uint64_t fence);
    void wait(uint64_t fence);

   private:
    std::deque<std::pair<uint64_t, cudaEvent_t>> pending_;
    std::vector<cudaEvent_t> spare_;
    uint64_t last_ = 0, done_ = 0;
  };
  // The copy queue beside the ops (copy_beside): its stream, the event that orders copies after the ops when
  // asked, and its fences; the fences of the op stream (ops_fence).
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t ops_mark_ = nullptr;
  StreamFences copy_fences_, op_fences_;
};

// The backend as a CudaBackend, or null when it is another backend.
CudaBackend* as_cuda_backend(Backend& backend);

}  // namespace ls
