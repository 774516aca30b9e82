// cpu_backend.h: CpuBackend, the CPU backend. Memory is host memory; ops run synchronously on a persistent
// thread pool. Activations are float32; weight matrices are packed panels (cpu_weights.h) in float32 (the
// reference every CUDA op is tested against and the oracle-parity path), bf16/fp16 or int8, converted in
// registers and accumulated in float32 by the kernels of cpu_kernels.h. Every op computes each output element
// in one fixed order, so a row's results are bitwise identical whatever else shares its batch (batch size,
// position, other rows' adapters, prefill chunk or decode) and whatever the thread count or instruction set.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_thread_pool.h"
#include "backend/cpu/cpu_weights.h"
#include "core/serial_worker.h"

namespace ls {

struct CpuBackendOptions {
  int num_threads = 0;                           // 0: one per core
  cpu::WeightFormat weights = cpu::WeightFormat::kF32;  // kBF16: fp16 checkpoints stay kF16
  const cpu::CpuKernels* kernels = nullptr;      // null: the best this CPU runs (tests force others)
};

// Parses BackendOptions::cpu_weights ("f32", "bf16", "int8").
Result<cpu::WeightFormat> parse_cpu_weights(const std::string& name);

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options);
  std::string name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::kF32; }
  const cpu::CpuKernels& kernels() const { return *kernels_; }
  int num_threads() const { return pool_.size(); }

  MemoryInfo memory_info() const override;
  Result<Buffer> allocate(size_t bytes) override;
  void copy_to_device(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void upload_f32(void* dst, const float* src, size_t n) override;
  void synchronize() override {}
  void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) override;
  BatchMeta upload_batch(const BatchMeta& host) override { return host; }

  Result<WeightMatrix> allocate_weight(int64_t rows, int64_t cols, DType source) override;
  void upload_weight(const Tensor& w, const float* src) override;
  void stage_lora(void* a, void* b, const float* host_a, const float* host_b, int64_t rank, int64_t in_dim,
                  int64_t out_dim) override;
  void fill_lora_uniform(void* a, void* b, int64_t rank, int64_t in_dim, int64_t out_dim, uint64_t seed, float a_bound,
                         float b_bound) override;

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
  // Copies beside the ops run in order on one worker thread. CPU ops are synchronous, so every op enqueued before
  // copy_beside has finished when it is called (whatever `after` says); later ops do not read what the copies
  // write until copies_done says so (LoraSlots). An 8B-shaped adapter's tens of MB thus leave the engine thread.
  // ops_fence / ops_done: Backend's (always done).
  uint64_t copy_beside(const HostCopy* copies, size_t n, CopyAfter after) override;
  bool copies_done(uint64_t fence) override { return copies_.done(fence); }
  void wait_copies(uint64_t fence) override { copies_.wait(fence); }

  // The packed matrix behind a weight tensor from allocate_weight; null for any other tensor.
  const cpu::PackedMatrix* packed(const Tensor& w) const;
  // LoRA matrices are stored in bf16 when the weights are bf16 or int8 (float32 with float32 weights).
  bool lora_bf16() const { return weights_ != cpu::WeightFormat::kF32; }

 private:
  // Packed weights by data pointer; shared with the deleters of their buffers, which unregister them.
  struct WeightRegistry {
    std::mutex mutex;
    std::unordered_map<const void*, cpu::PackedMatrix> matrices;
  };

  cpu::WeightFormat weights_;
  const cpu::CpuKernels* kernels_;
  mutable CpuThreadPool pool_;
  std::shared_ptr<WeightRegistry> registry_;
  std::vector<float> scratch_;  // an unregistered float32 weight packed for one linear call
  SerialWorker copies_;
};

// The sampling ops on one row of host float32 logits: the CPU backend's implementation, and the host path of a
// backend that has no kernel for an op.
int32_t sample_row_host(const float* row, int64_t n, const SamplingParams& p);
void apply_penalties_host(float* logits, int64_t ld, int64_t cols, const TokenCounts& counts);
void logprobs_row_host(const float* row, int64_t n, int32_t target, int32_t top_n, float* logprob, int32_t* top_ids,
                       float* top_logprobs);

}  // namespace ls
