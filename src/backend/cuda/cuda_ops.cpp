// cuda_ops.cpp: CudaBackend's ops: Tensor-level shape and dtype checks, then one launcher call each (kernels/)
// or cuBLASLt (cuda_gemm.h); the sampling ops upload their host arrays through pinned staging first. A launch
// error is fatal.
#include <algorithm>
#include <cstring>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/attention.h"
#include "backend/cuda/kernels/embedding.h"
#include "backend/cuda/kernels/gather_rows.h"
#include "backend/cuda/kernels/gemv.h"
#include "backend/cuda/kernels/kv_write.h"
#include "backend/cuda/kernels/logprobs.h"
#include "backend/cuda/kernels/lora.h"
#include "backend/cuda/kernels/penalties.h"
#include "backend/cuda/kernels/rms_norm.h"
#include "backend/cuda/kernels/rope.h"
#include "backend/cuda/kernels/sample.h"
#include "backend/cuda/kernels/silu_mul.h"
#include "backend/cuda/kernels/skinny_gemm.h"

namespace ls {
namespace {

void check_bf16(const Tensor& t, const char* what) {
  LS_CHECK(t.dtype == DType::kBF16) << "cuda backend: " << what << " must be bf16";
}

// linear's operands: x [m, k] and weight [n, k] bf16, out [m, n] bf16 or float32.
void check_linear(const Tensor& x, const Tensor& weight, const Tensor& out) {
  check_bf16(x, "linear input");
  check_bf16(weight, "linear weight");
  LS_CHECK(out.dtype == DType::kBF16 || out.dtype == DType::kF32) << "cuda backend: linear output bf16 or f32";
  LS_CHECK(x.cols == weight.cols && out.rows == x.rows && out.cols == weight.rows)
      << "linear shape mismatch: x " << x.rows << "x" << x.cols << " w " << weight.rows << "x" << weight.cols
      << " out " << out.rows << "x" << out.cols;
}

// add_rms_norm's operands: residual, x and out [rows, cols] bf16, weight [cols].
void check_add_rms_norm(const Tensor& residual, const Tensor& x, const Tensor& weight, const Tensor& out) {
  check_bf16(residual, "add_rms_norm residual");
  check_bf16(x, "add_rms_norm input");
  LS_CHECK(residual.rows == x.rows && residual.cols == x.cols && weight.cols == x.cols && out.rows == x.rows &&
           out.cols == x.cols)
      << "add_rms_norm shape mismatch";
}

// The RMSNorm that reads the o or down projection adds its LoRA deltas (lora_into_norm) for decode steps of up to
// kLoraIntoMaxRows rows (each row reads its adapter's B, which a prefill's expand reads once per tile of rows), in
// auto mode from kLoraIntoMinRows: H200 run 40's A/B measured 128 rows 3.3% faster with an adapter per row (even
// with one adapter), 8 and 32 rows 1-3% slower.
constexpr int64_t kLoraIntoMaxRows = 128, kLoraIntoMinRows = 65;

bool lora_into(CudaBackendOptions::LoraInto mode, int64_t rows) {
  using Mode = CudaBackendOptions::LoraInto;
  return rows <= kLoraIntoMaxRows && (mode == Mode::kAll || (mode == Mode::kAuto && rows >= kLoraIntoMinRows));
}

// The LoRA expands beside their projections (lora_sums_beside), in auto mode for decode steps of kLoraSumsMinRows
// to kLoraSumsMaxRows rows (fewer take the GEMV; gate/up at 3-8 rows too, run 68). H200 runs 60-61,
// one adapter / one per sequence against the option off: -3.2% at 4 and 8 rows, -5.3/-5.7% at 32, -3.5/-4.5% at
// 48, -1.3/-4.6% at 64, -2.3/-3.7% at 96, but +1.3/+1.6% at 128 (there the o/down deltas added by the norm from t
// and B, lora_into_norm, win).
constexpr int64_t kLoraSumsMinRows = 3, kLoraSumsMaxRows = 96;

bool lora_sums(CudaBackendOptions::LoraInto mode, int64_t rows) {
  using Mode = CudaBackendOptions::LoraInto;
  return mode == Mode::kAll || (mode == Mode::kAuto && rows >= kLoraSumsMinRows && rows <= kLoraSumsMaxRows);
}

void check_cache(const KvLayer& c) {
  LS_CHECK(c.k && c.v && c.block_size > 0 && c.num_kv_heads > 0 && c.head_dim > 0) << "cuda backend: bad KV layer";
}

// The rotation part of the RoPE kernel's arguments (the fused KV write adds its own).
cuda::RopeArgs rope_args(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) {
  check_bf16(q, "rope q");
  check_bf16(k, "rope k");
  LS_CHECK(q.cols % head_dim == 0 && k.cols % head_dim == 0) << "rope: columns not a multiple of head_dim";
  cuda::RopeArgs a;
  a.positions = batch.positions;
  a.num_tokens = batch.num_tokens;
  a.q = q.data;
  a.q_ld = q.ld;
  a.q_heads = q.cols / head_dim;
  a.k = k.data;
  a.k_ld = k.ld;
  a.kv_heads = k.cols / head_dim;
  a.inv_freq = inv_freq;
  a.head_dim = head_dim;
  return a;
}

// rope_args with the KV write of k and v.
cuda::RopeArgs rope_kv_args(const BatchMeta& batch, Tensor q, Tensor k, Tensor v, const float* inv_freq,
                            int64_t head_dim, const KvLayer& cache) {
  check_cache(cache);
  LS_CHECK(head_dim == cache.head_dim && k.cols == cache.num_kv_heads * head_dim && v.cols == k.cols &&
           q.cols % head_dim == 0)
      << "rope_kv_write shape mismatch";
  check_bf16(v, "rope_kv_write v");
  cuda::RopeArgs a = rope_args(batch, q, k, inv_freq, head_dim);
  a.kv_slots = batch.kv_slots;
  a.v = v.data;
  a.v_ld = v.ld;
  a.k_cache = cache.k;
  a.v_cache = cache.v;
  a.cache_slots = cache.num_blocks * cache.block_size;
  return a;
}

// The first column of `part` in `whole`'s rows where part is a column slice of whole (same rows and stride), else -1.
int64_t column_in(const Tensor& part, const Tensor& whole) {
  if (part.dtype != whole.dtype || part.ld != whole.ld || part.rows != whole.rows) return -1;
  const auto bytes = static_cast<const char*>(part.data) - static_cast<const char*>(whole.data);
  const auto elem = static_cast<int64_t>(whole.element_size());
  if (bytes < 0 || bytes % elem != 0 || bytes / elem + part.cols > whole.cols) return -1;
  return bytes / elem;
}

}  // namespace

void CudaBackend::embedding(const BatchMeta& batch, Tensor table, Tensor out) {
  check_bf16(table, "embedding table");
  check_bf16(out, "embedding output");
  LS_CHECK(out.rows == batch.num_tokens && out.cols == table.cols) << "embedding shape mismatch";
  LS_CUDA_CHECK(cuda::launch_embedding(batch.token_ids, batch.num_tokens, table.data, table.ld, table.rows, table.cols,
                                       out.data, out.ld, launch_stream()));
}

void CudaBackend::rms_norm(Tensor x, Tensor weight, float eps, Tensor out) {
  check_bf16(x, "rms_norm input");
  LS_CHECK(weight.cols == x.cols && out.rows == x.rows && out.cols == x.cols) << "rms_norm shape mismatch";
  LS_CUDA_CHECK(cuda::launch_rms_norm(nullptr, 0, x.data, x.ld, weight.data, out.data, out.ld, x.rows, x.cols, eps,
                                      nullptr, launch_stream()));
}

void CudaBackend::add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) {
  check_add_rms_norm(residual, x, weight, out);
  LS_CUDA_CHECK(cuda::launch_rms_norm(residual.data, residual.ld, x.data, x.ld, weight.data, out.data, out.ld, x.rows,
                                      x.cols, eps, nullptr, launch_stream()));
}

bool CudaBackend::gemv_takes(Tensor x, Tensor weight) const {
  static_assert(CudaBackendOptions::kMaxGemvRows == cuda::kGemvMaxRows, "gemv_rows reaches the kernel's rows");
  return x.rows <= options_.gemv_rows && cuda::gemv_supported(x.rows, x.cols, x.data, x.ld, weight.data, weight.ld);
}

void CudaBackend::linear(Tensor x, Tensor weight, Tensor bias, Tensor out) { project(x, weight, bias, out, num_sms_); }

void CudaBackend::project(Tensor x, Tensor weight, Tensor bias, Tensor out, int sms) {
  check_linear(x, weight, out);
  if (x.rows == 0) return;
  const bool out_f32 = out.dtype == DType::kF32;
  if (gemv_takes(x, weight)) {
    LS_CUDA_CHECK(cuda::launch_gemv(x.data, x.ld, weight.data, weight.ld, bias.data, out.data, out.ld, out_f32, x.rows,
                                    weight.rows, x.cols, num_sms_, launch_stream()));
    return;
  }
  using Skinny = CudaBackendOptions::Skinny;
  const bool skinny = options_.skinny == Skinny::kAll ||
                      (options_.skinny == Skinny::kAuto &&
                       cuda::skinny_gemm_preferred(x.rows, weight.rows, x.cols, num_sms_));
  if (skinny && cuda::skinny_gemm_supported(x.rows, weight.rows, x.cols, x.data, x.ld, weight.data, weight.ld)) {
    const int64_t floats = cuda::skinny_gemm_accumulator_floats(x.rows, weight.rows, x.cols, sms);
    float* acc = floats > 0 ? zeroed_scratch(skinny_accumulator_, static_cast<size_t>(floats)) : nullptr;
    LS_CUDA_CHECK(cuda::launch_skinny_gemm(x.data, x.ld, weight.data, weight.ld, bias.data, out.data, out.ld, out_f32,
                                           x.rows, weight.rows, x.cols, acc, static_cast<int32_t*>(arrivals_.data()),
                                           sms, launch_stream()));
    return;
  }
  LS_CHECK(!(bias.data && out_f32)) << "cuda backend: linear with bias into float32 output is not supported";
  cuda::GemmArgs g;
  g.x = x.data;
  g.ldx = x.ld;
  g.w = weight.data;
  g.ldw = weight.ld;
  g.bias = bias.data;
  g.out = out.data;
  g.ldo = out.ld;
  g.out_f32 = out_f32;
  g.m = x.rows;
  g.n = weight.rows;
  g.k = x.cols;
  g.sm_target = sms < num_sms_ ? sms : 0;
  gemm_->run(g, capturing_);
}

void CudaBackend::rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) {
  LS_CUDA_CHECK(cuda::launch_rope(rope_args(batch, q, k, inv_freq, head_dim), launch_stream()));
}

void CudaBackend::kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) {
  check_cache(cache);
  const int64_t width = cache.num_kv_heads * cache.head_dim;
  LS_CHECK(k.cols == width && v.cols == width) << "kv_write width mismatch";
  LS_CUDA_CHECK(cuda::launch_kv_write(batch.kv_slots, batch.num_tokens, k.data, k.ld, v.data, v.ld, width, cache.k,
                                      cache.v, cache.num_blocks * cache.block_size, launch_stream()));
}

void CudaBackend::rope_kv_write(const BatchMeta& batch, Tensor q, Tensor k, Tensor v, const float* inv_freq,
                                int64_t head_dim, const KvLayer& cache) {
  LS_CUDA_CHECK(cuda::launch_rope(rope_kv_args(batch, q, k, v, inv_freq, head_dim, cache), launch_stream()));
}

void CudaBackend::attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                            Tensor out) {
  check_bf16(q, "attention q");
  check_bf16(out, "attention output");
  check_cache(cache);
  LS_CHECK(params.num_heads % cache.num_kv_heads == 0) << "heads not a multiple of kv heads";
  LS_CHECK(q.cols == params.num_heads * cache.head_dim && out.cols == q.cols && q.rows == batch.num_tokens &&
           out.rows == q.rows)
      << "attention shape mismatch";
  cuda::AttentionArgs a;
  a.query_start = batch.query_start;
  a.positions = batch.positions;
  a.context_lens = batch.context_lens;
  a.block_tables = batch.block_tables;
  a.num_tokens = batch.num_tokens;
  a.num_seqs = batch.num_seqs;
  a.max_blocks_per_seq = batch.max_blocks_per_seq;
  a.max_query_len = batch.max_query_len;
  a.max_context_len = batch.max_context_len;
  a.q = q.data;
  a.q_ld = q.ld;
  a.out = out.data;
  a.out_ld = out.ld;
  a.k_cache = cache.k;
  a.v_cache = cache.v;
  a.block_size = cache.block_size;
  a.num_kv_heads = cache.num_kv_heads;
  a.head_dim = cache.head_dim;
  a.num_heads = params.num_heads;
  a.scale = params.scale;
  a.sliding_window = params.sliding_window;
  const bool simt = options_.decode_attention == CudaBackendOptions::DecodeAttention::kSimt;
  a.decode_kernel = simt ? cuda::DecodeKernel::kSimt : cuda::DecodeKernel::kTensorCore;
  if (a.num_tokens == 0) return;
  if (cuda::attention_decode_supported(a) && a.num_tokens == a.num_seqs) {
    const int64_t floats = cuda::attention_decode_scratch_floats(a, num_sms_);
    float* partials = floats > 0 ? scratch(attention_scratch_, static_cast<size_t>(floats)) : nullptr;
    LS_CUDA_CHECK(cuda::launch_attention_decode(a, partials, num_sms_, launch_stream()));
  } else if (cuda::attention_prefill_supported(a)) {
    LS_CUDA_CHECK(cuda::launch_attention_prefill(a, launch_stream()));
  } else {
    LS_CUDA_CHECK(cuda::launch_attention_generic(a, launch_stream()));
  }
}

void CudaBackend::silu_mul(Tensor gate_up, Tensor out) {
  check_bf16(gate_up, "silu_mul input");
  LS_CHECK(gate_up.cols == 2 * out.cols && gate_up.rows == out.rows) << "silu_mul shape mismatch";
  LS_CUDA_CHECK(
      cuda::launch_silu_mul(gate_up.data, gate_up.ld, out.data, out.ld, out.rows, out.cols, nullptr, launch_stream()));
}

bool CudaBackend::silu_fused(Tensor x, Tensor weight, Tensor out) const {
  check_bf16(x, "linear_silu_mul input");
  check_bf16(weight, "linear_silu_mul weight");
  check_bf16(out, "linear_silu_mul output");
  LS_CHECK(x.cols == weight.cols && weight.rows == 2 * out.cols && out.rows == x.rows)
      << "linear_silu_mul shape mismatch: x " << x.rows << "x" << x.cols << " w " << weight.rows << "x" << weight.cols
      << " out " << out.rows << "x" << out.cols;
  // Batches of 1-3 rows whose projections take the GEMV keep it and a separate SiLU-mul unless the skinny kernel is
  // forced: at 2-3 rows that measured 6% / 1% faster per step, at 4 rows 4.5% slower (7-9% with adapters;
  // bench/cuda_engine_notes.md, run 37).
  using Skinny = CudaBackendOptions::Skinny;
  const bool fused = options_.skinny == Skinny::kAll ||
                     (options_.skinny == Skinny::kAuto && (x.rows > 3 || x.rows > options_.gemv_rows));
  return fused && x.rows > 0 &&
         cuda::skinny_gemm_silu_supported(x.rows, out.cols, x.cols, x.data, x.ld, weight.data, weight.ld, num_sms_);
}

void CudaBackend::linear_silu_mul(Tensor x, Tensor weight, Tensor bias, Tensor gate_up, Tensor out) {
  if (silu_fused(x, weight, out)) {
    LS_CUDA_CHECK(cuda::launch_skinny_gemm_silu(x.data, x.ld, weight.data, weight.ld, bias.data, out.data, out.ld,
                                                x.rows, out.cols, x.cols, num_sms_, launch_stream()));
    return;
  }
  // Rows the GEMV takes: SiLU-mul in its epilogue (the two-step path ran a SiLU-mul kernel per layer after it).
  if (options_.gemv_silu && gemv_takes(x, weight)) {
    LS_CUDA_CHECK(cuda::launch_gemv_silu(x.data, x.ld, weight.data, weight.ld, bias.data, out.data, out.ld, x.rows,
                                         out.cols, x.cols, num_sms_, launch_stream()));
    return;
  }
  Backend::linear_silu_mul(x, weight, bias, gate_up, out);
}

void CudaBackend::lora(const BatchMeta& batch, Tensor x, const LoraModuleWeights& w, Tensor y) {
  lora_group(batch, x, &w, &y, 1);
}

bool CudaBackend::lora_args(const BatchMeta& batch, Tensor x, const LoraModuleWeights* w, const Tensor* ys, int n,
                            cuda::LoraArgs& a) const {
  LS_CHECK(n >= 0 && n <= cuda::kLoraMaxModules) << "lora_group of " << n << " modules";
  if (n == 0 || !batch.has_lora || batch.num_lora_segments == 0 || x.rows == 0) return false;
  check_bf16(x, "lora input");
  a.seg_start = batch.lora_seg_start;
  a.seg_slot = batch.lora_seg_slot;
  a.num_segments = batch.num_lora_segments;
  a.num_tokens = static_cast<int32_t>(x.rows);
  a.in_dim = x.cols;
  a.x = x.data;
  a.x_ld = x.ld;
  a.bulk_expand = options_.lora_bulk_expand;
  for (int i = 0; i < n; ++i) {
    if (w[i].num_slots == 0) continue;
    check_bf16(ys[i], "lora output");
    LS_CHECK(x.cols == w[i].in_dim && ys[i].cols == w[i].out_dim && x.rows == ys[i].rows) << "lora shape mismatch";
    LS_CHECK(a.num_modules == 0 || a.num_slots == w[i].num_slots) << "lora_group: modules of different slot tables";
    a.num_slots = w[i].num_slots;
    cuda::LoraModuleArgs& m = a.m[a.num_modules++];
    m.a = w[i].a;
    m.b = w[i].b;
    m.ranks = w[i].ranks;
    m.out_dim = w[i].out_dim;
    m.y = ys[i].data;
    m.y_ld = ys[i].ld;
  }
  if (a.num_modules == 0) return false;
  LS_CHECK(cuda::lora_supported(a)) << "cuda backend: lora needs in_dim and row strides that are multiples of 8";
  return true;
}

float* CudaBackend::lora_partials(const cuda::LoraArgs& a) {
  return scratch(lora_scratch_, static_cast<size_t>(cuda::lora_scratch_floats(a, num_sms_)));
}

void CudaBackend::lora_group(const BatchMeta& batch, Tensor x, const LoraModuleWeights* w, const Tensor* ys, int n) {
  LS_CHECK(n >= 1) << "lora_group of " << n << " modules";
  cuda::LoraArgs a;
  if (!lora_args(batch, x, w, ys, n, a)) return;
  LS_CUDA_CHECK(cuda::launch_lora(a, lora_partials(a), num_sms_, launch_stream()));
}

void CudaBackend::linear_lora(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor out,
                              const LoraModuleWeights* w, const Tensor* ys, int n) {
  cuda::LoraArgs a;
  if (!lora_args(batch, x, w, ys, n, a)) {
    linear(x, weight, bias, out);
    return;
  }
  // Decode steps whose projections take the GEMV: the shrink and the deltas in the GEMV's launch (the other paths
  // check linear's operands in linear).
  if (gemv_lora(a, x, weight, out)) {
    check_linear(x, weight, out);
    float* t = scratch(lora_scratch_, static_cast<size_t>(cuda::gemv_lora_scratch_floats(a)));
    LS_CUDA_CHECK(
        cuda::launch_gemv_lora(a, weight.data, weight.ld, bias.data, out.data, out.ld, out.cols, t,
                               static_cast<int32_t*>(lora_counters_.data()), num_sms_, launch_stream()));
    return;
  }
  if (!options_.lora_overlap) {
    linear(x, weight, bias, out);
    LS_CUDA_CHECK(cuda::launch_lora(a, lora_partials(a), num_sms_, launch_stream()));
    return;
  }
  // The expand, which adds into the projection's output, waits for both.
  float* partial = linear_beside(a, x, weight, bias, out, false);
  LS_CUDA_CHECK(cuda::launch_lora_expand(a, partial, num_sms_, launch_stream()));
}

bool CudaBackend::gemv_lora(const cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor out) const {
  // Rows without an adapter keep the GEMV's bits: only where the GEMV takes the projection alone too.
  return x.rows <= options_.gemv_rows && options_.lora_fused_gemv && out.dtype == DType::kBF16 &&
         cuda::gemv_lora_supported(a, weight.data, weight.ld, out.data, out.ld, out.cols);
}

float* CudaBackend::linear_beside(const cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor bias, Tensor out,
                                  bool expand) {
  // The shrink reads only x, and the expand into sums nothing the projection writes: they run on the side stream
  // beside the projection (a second branch in a graph); the stream's next kernel waits for both.
  float* partial = lora_partials(a);
  LS_CUDA_CHECK(cudaEventRecord(fork_event_, stream_));
  LS_CUDA_CHECK(cudaStreamWaitEvent(side_stream_, fork_event_, 0));
  const cuda::Stream side{side_stream_, options_.pdl};
  LS_CUDA_CHECK(cuda::launch_lora_shrink(a, partial, num_sms_, side));
  if (expand) LS_CUDA_CHECK(cuda::launch_lora_expand(a, partial, num_sms_, side));
  LS_CUDA_CHECK(cudaEventRecord(join_event_, side_stream_));
  project(x, weight, bias, out, std::max(num_sms_ - options_.lora_beside_sms, num_sms_ / 2));
  LS_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_event_, 0));
  return partial;
}

bool CudaBackend::lora_deferral(cuda::LoraArgs& a, Tensor x, Tensor weight, Tensor out, bool into,
                                cuda::LoraDelta& d) {
  if (!options_.lora_overlap || gemv_lora(a, x, weight, out) ||
      !cuda::lora_delta(a, out.data, out.ld, out.cols, nullptr, num_sms_, d) || !cuda::lora_delta_aligned(d))
    return false;
  const bool sums = lora_sums(options_.lora_sums_beside, x.rows) &&
                    cuda::lora_delta_sums(a, scratch(lora_sums_, static_cast<size_t>(out.rows * out.ld)), d);
  return sums || into;
}

bool CudaBackend::lora_shared_deferral(const BatchMeta& batch, const cuda::LoraArgs& a, Tensor out,
                                       cuda::LoraArgs& one, cuda::LoraDelta& d) {
  if (!batch.lora_shared || !options_.lora_shared || !options_.lora_overlap) return false;
  one = a;
  one.one_split = true;
  return cuda::lora_delta(one, out.data, out.ld, out.cols, lora_partials(one), num_sms_, d);
}

void CudaBackend::linear_lora_add_rms_norm(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor y,
                                           const LoraModuleWeights* w, const Tensor* ys, int n, Tensor residual,
                                           Tensor norm_weight, float eps, Tensor out) {
  cuda::LoraArgs a;
  cuda::LoraDelta d;
  // Decode steps: the shrink (and with lora_sums_beside, the expand) beside the projection, then the norm adds the
  // deltas as it reads y (no expand after the projection; y keeps the projection alone).
  if (!lora_args(batch, x, w, ys, n, a) ||
      !lora_deferral(a, x, weight, y, lora_into(options_.lora_into_norm, x.rows), d)) {
    Backend::linear_lora_add_rms_norm(batch, x, weight, bias, y, w, ys, n, residual, norm_weight, eps, out);
    return;
  }
  check_add_rms_norm(residual, y, norm_weight, out);
  d.t = linear_beside(a, x, weight, bias, y, d.sums != nullptr);
  LS_CUDA_CHECK(cuda::launch_rms_norm(residual.data, residual.ld, y.data, y.ld, norm_weight.data, out.data, out.ld,
                                      y.rows, y.cols, eps, &d, launch_stream()));
}

void CudaBackend::linear_lora_rope_kv_write(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor qkv,
                                            const LoraModuleWeights* w, const Tensor* ys, int n, Tensor q, Tensor k,
                                            Tensor v, const float* inv_freq, int64_t head_dim, const KvLayer& cache) {
  // Decode steps (lora_sums_beside): the shrink and the expand into sums beside the projection, then RoPE adds the
  // deltas as it reads q, k and v (no expand after the projection).
  cuda::RopeArgs r = rope_kv_args(batch, q, k, v, inv_freq, head_dim, cache);
  r.q_col = column_in(q, qkv);
  r.k_col = column_in(k, qkv);
  r.v_col = column_in(v, qkv);
  cuda::LoraArgs a;
  if (!lora_args(batch, x, w, ys, n, a)) {
    Backend::linear_lora_rope_kv_write(batch, x, weight, bias, qkv, w, ys, n, q, k, v, inv_freq, head_dim, cache);
    return;
  }
  // Rows sharing one adapter (BatchMeta::lora_shared): the shrink (K in one split) beside the projection, then RoPE
  // adds the deltas from t, each block holding its head's B rows once for its rows (no expand).
  cuda::LoraArgs one;
  if (lora_shared_deferral(batch, a, qkv, one, r.delta) && cuda::rope_shared_supported(r)) {
    r.delta.t = linear_beside(one, x, weight, bias, qkv, false);
    LS_CUDA_CHECK(cuda::launch_rope_shared(r, launch_stream()));
    return;
  }
  r.delta = cuda::LoraDelta{};
  if (!lora_deferral(a, x, weight, qkv, false, r.delta) || !r.delta.sums || !cuda::rope_delta_supported(r)) {
    Backend::linear_lora_rope_kv_write(batch, x, weight, bias, qkv, w, ys, n, q, k, v, inv_freq, head_dim, cache);
    return;
  }
  r.delta.t = linear_beside(a, x, weight, bias, qkv, true);
  LS_CUDA_CHECK(cuda::launch_rope(r, launch_stream()));
}

void CudaBackend::linear_lora_silu_mul(const BatchMeta& batch, Tensor x, Tensor weight, Tensor bias, Tensor gate_up,
                                       Tensor out, const LoraModuleWeights* w, const Tensor* ys, int n) {
  cuda::LoraArgs a;
  if (!lora_args(batch, x, w, ys, n, a)) {
    linear_silu_mul(x, weight, bias, gate_up, out);
    return;
  }
  LS_CHECK(gate_up.rows == x.rows && gate_up.cols == weight.rows) << "linear_lora_silu_mul: gate_up shape";
  // Rows the GEMV takes (as in linear_silu_mul, so that rows without an adapter keep its bits): the shrink, the
  // product, the deltas and SiLU-mul in its one launch (each module's columns are where its y sits in gate_up,
  // which is never written).
  if (options_.gemv_silu && !silu_fused(x, weight, out) && gemv_lora(a, x, weight, gate_up)) {
    check_linear(x, weight, gate_up);
    check_bf16(out, "linear_lora_silu_mul output");
    LS_CHECK(out.rows == x.rows && 2 * out.cols == weight.rows) << "linear_lora_silu_mul: output shape";
    float* t = scratch(lora_scratch_, static_cast<size_t>(cuda::gemv_lora_scratch_floats(a)));
    LS_CUDA_CHECK(cuda::launch_gemv_lora_silu(a, weight.data, weight.ld, bias.data, gate_up.data, gate_up.ld, out.data,
                                              out.ld, out.cols, t, static_cast<int32_t*>(lora_counters_.data()),
                                              num_sms_, launch_stream()));
    return;
  }
  check_bf16(out, "linear_lora_silu_mul output");
  LS_CHECK(out.rows == x.rows && 2 * out.cols == weight.rows) << "linear_lora_silu_mul: output shape";
  cuda::LoraDelta l;
  // Rows sharing one adapter (BatchMeta::lora_shared), more than the skinny product's LoRA epilogue takes: the
  // shrink (K in one split) beside the plain gate/up product, then SiLU-mul adds the deltas from t, each block
  // holding its columns' B once for its rows (no expand).
  cuda::LoraArgs one;
  if (x.rows > cuda::kSkinnyLoraMaxRows && lora_shared_deferral(batch, a, gate_up, one, l) &&
      cuda::silu_mul_shared_supported(gate_up.data, gate_up.ld, out.data, out.ld, out.rows, out.cols, l)) {
    l.t = linear_beside(one, x, weight, bias, gate_up, false);
    LS_CUDA_CHECK(cuda::launch_silu_mul_shared(gate_up.data, gate_up.ld, out.data, out.ld, out.rows, out.cols, l,
                                               launch_stream()));
    return;
  }
  l = cuda::LoraDelta{};
  // Decode steps (lora_sums_beside): the shrink and the expand into sums beside the plain gate/up product, then
  // SiLU-mul adds the deltas as it reads gate_up. H200 run 68: at 3-8 rows 1-2% faster than the skinny epilogue
  // below with one adapter, within 1% with one per sequence.
  if (lora_deferral(a, x, weight, gate_up, false, l)) {
    l.t = linear_beside(a, x, weight, bias, gate_up, true);
    LS_CUDA_CHECK(
        cuda::launch_silu_mul(gate_up.data, gate_up.ld, out.data, out.ld, out.rows, out.cols, &l, launch_stream()));
    return;
  }
  // The shrink, then the gate/up product whose epilogue adds the deltas (its weights and x stream in while the
  // shrink runs: programmatic dependent launch). Each module's columns are where its y sits in gate_up.
  LS_CHECK(cuda::lora_delta(a, gate_up.data, gate_up.ld, gate_up.cols, nullptr, num_sms_, l))
      << "linear_lora_silu_mul: a LoRA output is not a column slice of gate_up";
  // Up to kSkinnyLoraMaxRows rows, where it measured faster than the shrink beside the product and the expand and
  // SiLU-mul after it (skinny_gemm.h); the epilogue's warps take 8 features of one module.
  if (!options_.lora_fused_skinny || x.rows > cuda::kSkinnyLoraMaxRows || !cuda::lora_delta_aligned(l) ||
      !silu_fused(x, weight, out)) {
    Backend::linear_lora_silu_mul(batch, x, weight, bias, gate_up, out, w, ys, n);
    return;
  }
  float* partial = lora_partials(a);
  l.t = partial;
  LS_CUDA_CHECK(cuda::launch_lora_shrink(a, partial, num_sms_, launch_stream()));
  LS_CUDA_CHECK(cuda::launch_skinny_gemm_silu_lora(x.data, x.ld, weight.data, weight.ld, bias.data, out.data, out.ld,
                                                   x.rows, out.cols, x.cols, l, num_sms_, launch_stream()));
}

void CudaBackend::gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) {
  LS_CHECK(out.rows == batch.num_logit_rows && out.cols == src.cols && out.dtype == src.dtype)
      << "gather shape mismatch";
  const auto elem = static_cast<int64_t>(src.element_size());
  LS_CUDA_CHECK(cuda::launch_gather_rows(batch.logit_rows, batch.num_logit_rows, src.data, src.ld * elem, src.rows,
                                         out.data, out.ld * elem, src.cols * elem, launch_stream()));
}

void CudaBackend::argmax(Tensor logits, int32_t* tokens) {
  LS_CHECK(logits.dtype == DType::kF32) << "cuda backend: argmax input must be float32";
  LS_CUDA_CHECK(cuda::launch_argmax(logits.ptr<float>(), logits.ld, logits.rows, logits.cols, tokens, launch_stream()));
}

void CudaBackend::sample(Tensor logits, const SamplingParams* params, int32_t* tokens) {
  LS_CHECK(logits.dtype == DType::kF32) << "cuda backend: sample input must be float32";
  LS_CHECK(!capturing_) << "cuda backend: sample uploads its params and cannot be captured";
  if (logits.rows == 0) return;
  const size_t bytes = static_cast<size_t>(logits.rows) * sizeof(SamplingParams);
  LS_CHECK(bytes <= params_upload_.capacity()) << "too many rows to sample at once: " << logits.rows;
  std::memcpy(params_upload_.begin(), params, bytes);
  params_upload_.commit(bytes, stream_);
  const auto* d_params = static_cast<const SamplingParams*>(params_upload_.device());
  LS_CUDA_CHECK(cuda::launch_sample(logits.ptr<float>(), logits.ld, logits.rows, logits.cols, d_params, tokens,
                                    launch_stream()));
}

void CudaBackend::apply_penalties(Tensor logits, const TokenCounts& counts) {
  LS_CHECK(logits.dtype == DType::kF32 && counts.num_rows == logits.rows) << "cuda backend: apply_penalties shape";
  LS_CHECK(!capturing_) << "cuda backend: apply_penalties uploads its counts and cannot be captured";
  // Rows in groups whose counts fit the staging arena: row starts, tokens, counts, params, each 16-byte aligned.
  auto align = [](size_t b) { return (b + 15) / 16 * 16; };
  auto group_bytes = [&](int32_t first, int32_t end) {
    const auto entries = static_cast<size_t>(counts.row_start[end] - counts.row_start[first]);
    return align((end - first + 1) * sizeof(int32_t)) + 2 * align(entries * sizeof(int32_t)) +
           align((end - first) * sizeof(PenaltyParams));
  };
  for (int32_t first = 0; first < counts.num_rows;) {
    int32_t end = first + 1;
    LS_CHECK(group_bytes(first, end) <= penalty_upload_.capacity()) << "apply_penalties: one row's counts exceed "
                                                                      << penalty_upload_.capacity() << " bytes";
    while (end < counts.num_rows && group_bytes(first, end + 1) <= penalty_upload_.capacity()) ++end;
    const int32_t rows = end - first, base = counts.row_start[first];
    const auto entries = static_cast<size_t>(counts.row_start[end] - base);
    auto* host = static_cast<char*>(penalty_upload_.begin());
    auto* device = static_cast<char*>(penalty_upload_.device());
    size_t offset = 0;
    auto put = [&](const void* src, size_t bytes) {
      std::memcpy(host + offset, src, bytes);
      const size_t at = offset;
      offset += align(bytes);
      return device + at;
    };
    auto* starts = reinterpret_cast<int32_t*>(host);
    for (int32_t r = 0; r <= rows; ++r) starts[r] = counts.row_start[first + r] - base;
    offset = align((rows + 1) * sizeof(int32_t));
    const auto* d_starts = reinterpret_cast<const int32_t*>(device);
    const auto* d_tokens = reinterpret_cast<const int32_t*>(put(counts.token + base, entries * sizeof(int32_t)));
    const auto* d_counts = reinterpret_cast<const int32_t*>(put(counts.output_count + base, entries * sizeof(int32_t)));
    const auto* d_params =
        reinterpret_cast<const PenaltyParams*>(put(counts.params + first, rows * sizeof(PenaltyParams)));
    penalty_upload_.commit(offset, stream_);
    LS_CUDA_CHECK(cuda::launch_penalties(logits.ptr<float>() + first * logits.ld, logits.ld, rows, logits.cols,
                                         d_starts, d_tokens, d_counts, d_params, launch_stream()));
    first = end;
  }
}

static_assert(cuda::kLogprobsMaxTop == kMaxTopLogprobs, "the logprobs kernel's list length is the op's limit");

void CudaBackend::logprobs(Tensor logits, const int32_t* targets, int32_t top_n, float* logprob, int32_t* top_ids,
                           float* top_logprobs) {
  LS_CHECK(logits.dtype == DType::kF32) << "cuda backend: logprobs input must be float32";
  LS_CHECK(top_n >= 0 && top_n <= kMaxTopLogprobs) << "cuda backend: top_n out of range";
  LS_CUDA_CHECK(cuda::launch_logprobs(logits.ptr<float>(), logits.ld, logits.rows, logits.cols, targets, top_n, logprob,
                                      top_ids, top_logprobs, launch_stream()));
}

}  // namespace ls
