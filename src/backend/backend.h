// backend.h: the Backend interface, the small set of ops the transformer forward pass is written against.
// Two implementations: cpu/ (float32 activations, weights in float32 - the reference, run in CI - or bf16 /
// int8; batch invariant) and cuda/ (bf16 storage, fp32 accumulation).
// Every op reads and writes backend memory (Tensor / BatchMeta pointers). On an asynchronous backend ops are
// queued in order on one stream; copy_to_host and synchronize wait for them.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "backend/batch_meta.h"
#include "backend/lora_weights.h"
#include "backend/sampling_params.h"
#include "backend/tensor.h"
#include "core/status.h"

namespace ls {

// One layer's paged KV cache: K and V each [num_blocks, block_size, num_kv_heads, head_dim] in compute dtype.
// The most alternatives Backend::logprobs returns per row (vLLM's default --max-logprobs).
inline constexpr int32_t kMaxTopLogprobs = 20;

// A weight matrix in backend memory (Backend::allocate_weight): its tensor and the memory behind it.
struct WeightMatrix {
  Buffer memory;
  Tensor tensor;
};

struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
};

struct AttentionParams {
  float scale = 1.0f;           // softmax scale, 1/sqrt(head_dim)
  int64_t num_heads = 0;
  int64_t sliding_window = 0;   // 0: full causal attention; else a query at p sees keys in (p - window, p]
};

// A recorded sequence of ops that replays with the same device addresses (a CUDA graph).
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  // Enqueues the recorded ops again; what they read must be at the addresses they were recorded with.
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // The dtype weights and activations are stored in.
  virtual DType compute_dtype() const = 0;

  // ---- memory ----
  // The backend's memory: device memory on a GPU, physical RAM on the CPU (free = available to allocate).
  struct MemoryInfo {
    size_t free = 0, total = 0;
  };
  virtual MemoryInfo memory_info() const = 0;
  virtual Result<Buffer> allocate(size_t bytes) = 0;
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  // Waits for queued work, then copies.
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  // Converts n float32 host values into compute dtype at dst (backend memory).
  virtual void upload_f32(void* dst, const float* src, size_t n) = 0;
  virtual void synchronize() = 0;
  // t[r][c] = uniform_at(seed, r * cols + c, lo, hi) (backend/random_fill.h), rounded to t's dtype (a weight
  // from allocate_weight: stored in its format).
  virtual void fill_uniform(Tensor t, uint64_t seed, float lo, float hi) = 0;

  // ---- weights ----
  // Weight matrices (projections and lm_head [out_features, in_features], the embedding table) live in a format
  // of the backend's choosing that only linear, linear_silu_mul and embedding read: the CPU backend packs them
  // for its GEMM as float32, bf16 (fp16 when `source` is F16) or int8 with one scale per row
  // (BackendOptions::cpu_weights). `source` is the dtype the checkpoint holds. Default: row-major, compute dtype.
  virtual Result<WeightMatrix> allocate_weight(int64_t rows, int64_t cols, DType source) {
    WeightMatrix w;
    LS_ASSIGN_OR_RETURN(w.memory, allocate(static_cast<size_t>(rows * cols) * dtype_size(compute_dtype())));
    w.tensor = w.memory.as_tensor(compute_dtype(), rows, cols);
    return w;
  }
  // Stores float32 host values [rows, cols] into a weight from allocate_weight.
  virtual void upload_weight(const Tensor& w, const float* src) {
    upload_f32(w.data, src, static_cast<size_t>(w.rows * w.cols));
  }
  // Writes one module's LoRA matrices, float32 host A [rank, in_dim] and B [out_dim, rank] (scale folded in), into
  // host memory a and b (room for rank * in_dim and out_dim * rank compute-dtype elements) in the layout the lora
  // op reads once they are copied into backend memory (LoraSlots stages adapters with it). Default: row-major in
  // compute dtype; the CPU backend lays both out for streaming (A in blocks of 16 ranks, B^T in panels of 64
  // outputs), in bf16 when its weights are bf16 or int8.
  virtual void stage_lora(void* a, void* b, const float* host_a, const float* host_b, int64_t rank, int64_t in_dim,
                          int64_t out_dim);
  // Fills one module's LoRA matrices in backend memory with A[r][c] = uniform_at(seed, r * in_dim + c, -a_bound,
  // a_bound) and B[o][r] = uniform_at(seed + 1, o * rank + r, -b_bound, b_bound), in the lora op's layout (dummy
  // adapters). Default: fill_uniform of both, row-major.
  virtual void fill_lora_uniform(void* a, void* b, int64_t rank, int64_t in_dim, int64_t out_dim, uint64_t seed,
                                 float a_bound, float b_bound) {
    fill_uniform(Tensor::make(a, compute_dtype(), rank, in_dim), seed, -a_bound, a_bound);
    fill_uniform(Tensor::make(b, compute_dtype(), out_dim, rank), seed + 1, -b_bound, b_bound);
  }

  // Copies a ForwardBatch's index arrays into backend memory; the result stays valid until the next call.
  // `host` is the same BatchMeta with host pointers.
  virtual BatchMeta upload_batch(const BatchMeta& host) = 0;

  // ---- ops ----
  // out[t] = table[token_ids[t]]
  virtual void embedding(const BatchMeta& batch, Tensor table, Tensor out) = 0;
  // out = rmsnorm(x) * weight (weight: 1 x cols)
  virtual void rms_norm(Tensor x, Tensor weight, float eps, Tensor out) = 0;
  // residual += x; out = rmsnorm(residual) * weight
  virtual void add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) = 0;
  // out = x weight^T (+ bias). weight [out_features, in_features]; bias (1 x out_features) may be null data.
  // out may be float32 regardless of compute dtype (logits).
  virtual void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) = 0;
  // Rotates q [T, num_heads*head_dim] and k [T, num_kv_heads*head_dim] in place (rotate-half layout) by
  // positions[t] * inv_freq (inv_freq: head_dim/2 float32 in backend memory).
  virtual void rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) = 0;
  // Stores k, v rows [T, num_kv_heads*head_dim] at batch.kv_slots in the layer's cache; rows whose slot is -1 (a
  // padded step's padding rows) are not stored.
  virtual void kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) = 0;
  // rope, then kv_write of the rotated k and v: one pass over the rows where a backend fuses them.
  virtual void rope_kv_write(const BatchMeta& batch, Tensor q, Tensor k, Tensor v, const float* inv_freq,
                             int64_t head_dim, const KvLayer& cache) {
    rope(batch, q, k, inv_freq, head_dim);
    kv_write(batch, k, v, cache);
  }
  // Causal attention of each sequence's query tokens over its cached context (GQA), out [T, num_heads*head_dim].
  virtual void attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                         Tensor out) = 0;
  // out = silu(gate_up[:, :I]) * gate_up[:, I:]
  virtual void silu_mul(Tensor gate_up, Tensor out) = 0;
  // out = silu(x W_gate^T + b_gate) * (x W_up^T + b_up), with weight = [W_gate; W_up] (2 I x in_features) and bias
  // likewise (may be null data): linear into the [T, 2 I] scratch gate_up, then silu_mul, where a backend does
  // not fuse them (the CUDA backend does for decode batches: the gate/up product never reaches memory).
  virtual void linear_silu_mul(Tensor x, Tensor weight, Tensor bias, Tensor gate_up, Tensor out) {
    linear(x, weight, bias, gate_up);
    silu_mul(gate_up, out);
  }
  // y += B_slot (A_slot x) per token, slot from the batch's LoRA segments (slot -1 or rank 0: nothing); A and B
  // as stage_lora laid them out.
  virtual void lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& weights, Tensor y) = 0;
  // lora() for n <= 3 modules that read the same x (q/k/v; gate/up): ys[i] += B_i(A_i x) by weights[i], in one
  // pass where a backend fuses them.
  virtual void lora_group(const BatchMeta& batch, Tensor x, const LoraModuleWeights* weights, const Tensor* ys, int n) {
    for (int i = 0; i < n; ++i) lora(batch, x, weights[i], ys[i]);
  }
  // out = x weight^T (+ bias), then ys[i] += B_i(A_i x) as lora_group, where the ys are column slices of out: a
  // projection and the LoRA of its modules (n may be 0) in one call, so a backend may run the LoRA beside it.
  virtual void linear_lora(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor out,
                           const LoraModuleWeights* lora, const Tensor* ys, int n) {
    linear(x, weight, bias, out);
    if (n > 0) lora_group(batch, x, lora, ys, n);
  }
  // linear_silu_mul with the LoRA of the gate and up modules (ys: column slices of gate_up, n may be 0) added to
  // the product before the activation: linear_lora into gate_up, then silu_mul, where a backend does not fuse them
  // (the CUDA backend does for decode batches: the deltas join the GEMV's epilogue at 1-2 rows, and SiLU-mul adds
  // them from sums written beside the product at 3-96).
  virtual void linear_lora_silu_mul(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor gate_up,
                                    Tensor out, const LoraModuleWeights* lora, const Tensor* ys, int n) {
    if (n == 0) return linear_silu_mul(x, weight, bias, gate_up, out);
    linear_lora(batch, x, weight, bias, gate_up, lora, ys, n);
    silu_mul(gate_up, out);
  }
  // linear_lora into y (its ys column slices of y), then add_rms_norm(residual, y, norm_weight, eps, out): a
  // projection with its LoRA feeding the residual add and the next norm. y is scratch: where a backend adds the
  // deltas as the norm reads y (the CUDA backend for decode steps), y keeps the projection alone.
  virtual void linear_lora_add_rms_norm(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor y,
                                        const LoraModuleWeights* lora, const Tensor* ys, int n, Tensor residual,
                                        Tensor norm_weight, float eps, Tensor out) {
    linear_lora(batch, x, weight, bias, y, lora, ys, n);
    add_rms_norm(residual, y, norm_weight, eps, out);
  }
  // linear_lora into qkv (its ys column slices of qkv), then rope_kv_write(q, k, v), where q, k and v are qkv's
  // column slices: the attention's projection with its LoRA feeding RoPE and the KV write. Where a backend adds
  // the deltas as RoPE reads the rows (the CUDA backend for decode steps), q, k and v still end as these two calls
  // leave them.
  virtual void linear_lora_rope_kv_write(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor qkv,
                                         const LoraModuleWeights* lora, const Tensor* ys, int n, Tensor q, Tensor k,
                                         Tensor v, const float* inv_freq, int64_t head_dim, const KvLayer& cache) {
    linear_lora(batch, x, weight, bias, qkv, lora, ys, n);
    rope_kv_write(batch, q, k, v, inv_freq, head_dim, cache);
  }
  // out[i] = src[batch.logit_rows[i]]
  virtual void gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) = 0;
  // tokens[r] = argmax over logits row r (float32 logits); tokens in backend memory.
  virtual void argmax(Tensor logits, int32_t* tokens) = 0;
  // tokens[r] = the token drawn from float32 logits row r under params[r] (host array of logits.rows), by the
  // arithmetic of backend/sampling_math.h, so every backend draws the same token; tokens in backend memory.
  virtual void sample(Tensor logits, const SamplingParams* params, int32_t* tokens) = 0;
  // logits[r][t] = penalized_logit(logits[r][t], count, params[r]) (backend/sampling_math.h) for each entry
  // (t, count) of row r in `counts` (host arrays, counts.num_rows == logits.rows); other logits unchanged.
  virtual void apply_penalties(Tensor logits, const TokenCounts& counts) = 0;
  // logprob[r] = logits[r][targets[r]] - logsumexp(logits[r]); top_ids[r * top_n + i], top_logprobs[...] the
  // i-th largest logit's id and log-probability (descending, ties to the lower id), for top_n in [0, 20].
  // Float32 logits; targets and outputs in backend memory.
  virtual void logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                        float* top_logprobs) = 0;

  // ---- copies beside the ops (adapter loads) ----
  // A host-to-device copy of `rows` rows of `width` bytes (pitches in bytes; rows == 1: one plain block).
  struct HostCopy {
    void* dst = nullptr;
    size_t dst_pitch = 0;
    const void* src = nullptr;
    size_t src_pitch = 0;
    size_t width = 0;
    size_t rows = 1;
  };
  // Host memory that copy_beside reads fastest (pinned on CUDA: the copy engine streams it directly).
  virtual Result<Buffer> allocate_host(size_t bytes) {
    void* p = ::operator new(bytes, std::nothrow);
    if (!p) return resource_exhausted("host allocation of " + std::to_string(bytes) + " bytes failed");
    return Buffer(p, bytes, [](void* q) { ::operator delete(q); });
  }
  // What copies queued beside the ops start after: kOps, every op enqueued so far (so they may overwrite memory
  // those ops read) and the copies queued before; kCopies, the copies queued before only (nothing enqueued reads
  // their destination).
  enum class CopyAfter { kOps, kCopies };
  // Queues copies on a queue beside the ops, in order among themselves, starting as `after` says; they never
  // delay ops enqueued later. Returns a fence for copies_done and wait_copies; the sources must stay unchanged
  // until the fence is done. Synchronous where a backend has no such queue.
  virtual uint64_t copy_beside(const HostCopy* copies, size_t n, CopyAfter /*after*/) {
    for (size_t i = 0; i < n; ++i)
      for (size_t r = 0; r < copies[i].rows; ++r)
        copy_to_device(static_cast<char*>(copies[i].dst) + r * copies[i].dst_pitch,
                       static_cast<const char*>(copies[i].src) + r * copies[i].src_pitch, copies[i].width);
    return 0;
  }
  virtual bool copies_done(uint64_t /*fence*/) { return true; }
  virtual void wait_copies(uint64_t /*fence*/) {}

  // ---- progress of the ops ----
  // A fence after every op enqueued so far, for ops_done (0 where ops are synchronous: always done).
  virtual uint64_t ops_fence() { return 0; }
  // Whether every op enqueued before the fence has finished; never waits.
  virtual bool ops_done(uint64_t /*fence*/) { return true; }

  // ---- graphs ----
  // Ops enqueued between begin_capture and end_capture are recorded instead of run (backends without graphs
  // return kUnsupported from begin_capture). Nothing may allocate backend memory while capturing.
  virtual bool supports_graphs() const { return false; }
  // Whether steps flagged BatchMeta::lora_shared take other kernels than steps with a mix of adapters (so decode
  // graphs record a graph of their own for them).
  virtual bool lora_shared_kernels() const { return false; }
  virtual Status begin_capture() { return unsupported(name() + " backend has no graphs"); }
  virtual Result<std::unique_ptr<OpGraph>> end_capture() { return unsupported(name() + " backend has no graphs"); }
};

// The CPU backend: float32 activations, its own batch-invariant GEMM over packed weights, a persistent thread
// pool. `weights`: "f32", "bf16" or "int8" (BackendOptions::cpu_weights; anything else is a CHECK failure).
std::unique_ptr<Backend> make_cpu_backend(int num_threads = 0, const std::string& weights = "f32");

// The CUDA backend's settings: which kernel path each op takes where there are alternatives. The defaults are
// the measured-fastest paths; bench/engine_bench's flags and the tests set the others to compare them.
struct CudaBackendOptions {
  enum class Skinny { kOff, kAuto, kAll };
  enum class DecodeAttention { kTensorCore, kSimt };
  enum class GemmTune { kCold, kWarm, kOff, kSearch };
  // Projections of 1 to gemv_rows rows (0: none) take the weight-streaming GEMV, larger ones the skinny GEMM or
  // cuBLASLt. At 3-4 rows the skinny GEMM measured faster (bench/cuda_engine_notes.md, run 38).
  static constexpr int kMaxGemvRows = 4;
  int gemv_rows = 2;
  bool gemv_silu = true;  // gate/up products the GEMV takes apply SiLU-mul in its epilogue (else a SiLU-mul kernel)
  // The weight-streaming skinny GEMM for 3-128 rows: never, where it measured faster than cuBLASLt (up to 32 rows;
  // the fused gate/up SiLU product up to 64), or wherever it applies (65-128 rows on wgmma, slower than cuBLASLt).
  Skinny skinny = Skinny::kAuto;
  DecodeAttention decode_attention = DecodeAttention::kTensorCore;  // or the older CUDA-core kernel
  bool pdl = true;  // programmatic dependent launch: each kernel's launch overlaps the previous one's tail
  // cuBLASLt plan choice per shape: its candidates timed with L2 swept cold (as decode steps see their weights),
  // timed on warm L2, the heuristic's first without timing, or more candidates and their K-split variants timed
  // cold (kSearch: seconds more per batch size).
  GemmTune gemm_tune = GemmTune::kCold;
  bool lora_overlap = true;      // a projection's LoRA shrink on a second branch beside it (linear_lora)
  int lora_beside_sms = 0;       // SMs that projection leaves to the branch (its grid or cuBLASLt's SM target;
                                 // at most half)
  bool lora_bulk_expand = true;  // decode steps' LoRA expand streams B by bulk copies (else the mma expand)
  bool lora_fused_gemv = true;   // projections the GEMV takes add their LoRA in its launch (linear_lora)
  bool lora_fused_skinny = true; // 3-8 row gate/up products add their LoRA in the skinny GEMM's SiLU epilogue
                                 // (where lora_sums_beside does not take them)
  // The o and down LoRA deltas of decode steps added by the RMSNorm that reads the projection (no expand kernel):
  // never, at the batch sizes where it measured faster, or at every decode batch size.
  enum class LoraInto { kOff, kAuto, kAll };
  LoraInto lora_into_norm = LoraInto::kAuto;
  // The LoRA expands of decode steps on the side branch too, beside the projection, writing fp32 deltas that the
  // kernel reading the projection (RoPE for q/k/v, RMSNorm for o and down, SiLU-mul for gate/up) adds: never, at
  // the batch sizes where it measured faster, or at every size (prefill chunks included). Ahead of lora_into_norm
  // where both apply.
  LoraInto lora_sums_beside = LoraInto::kAuto;
  // Decode steps whose rows share one adapter (BatchMeta::lora_shared; their own decode graphs) take kernels that
  // read its B once per 32 rows: RoPE and SiLU-mul add the q/k/v and gate/up deltas from t (no expand kernel).
  // Off until they measure faster than the expands (bench/cuda_engine_notes.md, runs 93-95).
  bool lora_shared = false;
};

// Every setting of a backend, in one place: the command line and the benchmarks fill it, nothing reads the
// environment behind it.
struct BackendOptions {
  std::string device = "cpu";  // "cpu", or "cuda" when built with LORASERVE_CUDA and a GPU is present
  int cpu_threads = 0;         // cpu: worker threads (0: one per core)
  std::string cpu_weights = "f32";  // cpu: weight storage: "f32" (the parity reference), "bf16" (a checkpoint's
                                    // fp16 stays fp16) or "int8" (per-row scales); activations stay float32
  CudaBackendOptions cuda;     // cuda: kernel paths
};

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options);
// make_backend with default options for the device.
Result<std::unique_ptr<Backend>> make_backend(const std::string& device);

}  // namespace ls
