// cpu_backend.cpp: CpuBackend memory, GEMM and the element-wise ops (norms, embedding, activation, gathers).
// Attention and LoRA live in cpu_attention.cpp and cpu_lora.cpp.
#include "backend/cpu/cpu_backend.h"
#include "backend/random_fill.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

namespace ls {

CpuBackend::CpuBackend(int num_threads) : num_threads_(num_threads > 0 ? num_threads : omp_get_max_threads()) {
  omp_set_num_threads(num_threads_);
  openblas_set_num_threads(num_threads_);
}

std::unique_ptr<Backend> make_cpu_backend(int num_threads) { return std::make_unique<CpuBackend>(num_threads); }

Backend::MemoryInfo CpuBackend::memory_info() const {
  MemoryInfo info;
  const long page = sysconf(_SC_PAGESIZE);
  info.total = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(page);
  info.free = static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<size_t>(page);
  return info;
}

Result<Buffer> CpuBackend::allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) return resource_exhausted("host allocation of " + std::to_string(bytes) + " bytes failed");
  return Buffer(p, bytes, [](void* q) { std::free(q); });
}

void CpuBackend::copy_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::upload_f32(void* dst, const float* src, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }

void CpuBackend::fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  LS_CHECK(t.dtype == DType::kF32) << "cpu backend: fill_uniform of non-float32 tensor";
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < t.rows; ++r) {
    float* row = t.ptr<float>() + r * t.ld;
    for (int64_t c = 0; c < t.cols; ++c) row[c] = uniform_at(seed, static_cast<uint64_t>(r * t.cols + c), lo, hi);
  }
}

namespace {

void check_f32(const Tensor& t, const char* what) {
  LS_CHECK(t.dtype == DType::kF32) << "cpu backend: " << what << " must be float32";
}

float rms_scale(const float* x, int64_t n, float eps) {
  double sum = 0;  // float32 in transformers; double here keeps the reference at least as precise
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
}

}  // namespace

void cpu_gemm_nt(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int64_t rows,
                 int64_t n, int64_t k, float beta) {
  if (rows == 0 || n == 0) return;
  if (rows == 1) {  // decode at batch 1: a matrix-vector product streams the weights once, without GEMM packing
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, w, static_cast<int>(ldw),
                x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(ldx), w, static_cast<int>(ldw), beta, y,
              static_cast<int>(ldy));
}

void CpuBackend::embedding(const BatchMeta& batch, Tensor table, Tensor out) {
  check_f32(table, "embedding table");
  LS_CHECK(out.rows == batch.num_tokens && out.cols == table.cols) << "embedding shape mismatch";
  for (int32_t t = 0; t < batch.num_tokens; ++t) {
    const int32_t id = batch.token_ids[t];
    LS_CHECK(id >= 0 && id < table.rows) << "token id " << id << " outside the vocabulary";
    std::memcpy(out.ptr<float>() + t * out.ld, table.ptr<float>() + id * table.ld, table.cols * sizeof(float));
  }
}

void CpuBackend::rms_norm(Tensor x, Tensor weight, float eps, Tensor out) {
  check_f32(x, "rms_norm input");
  LS_CHECK(weight.cols == x.cols && out.rows == x.rows && out.cols == x.cols) << "rms_norm shape mismatch";
  const float* w = weight.ptr<float>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* xr = x.ptr<float>() + r * x.ld;
    float* o = out.ptr<float>() + r * out.ld;
    const float s = rms_scale(xr, x.cols, eps);
    for (int64_t i = 0; i < x.cols; ++i) o[i] = w[i] * (xr[i] * s);
  }
}

void CpuBackend::add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) {
  LS_CHECK(residual.rows == x.rows && residual.cols == x.cols) << "add_rms_norm shape mismatch";
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows; ++r) {
    float* res = residual.ptr<float>() + r * residual.ld;
    const float* xr = x.ptr<float>() + r * x.ld;
    for (int64_t i = 0; i < x.cols; ++i) res[i] += xr[i];
  }
  rms_norm(residual, weight, eps, out);
}

void CpuBackend::linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
  check_f32(x, "linear input");
  check_f32(weight, "linear weight");
  check_f32(out, "linear output");
  LS_CHECK(x.cols == weight.cols && out.rows == x.rows && out.cols == weight.rows)
      << "linear shape mismatch: x " << x.rows << "x" << x.cols << " w " << weight.rows << "x" << weight.cols
      << " out " << out.rows << "x" << out.cols;
  cpu_gemm_nt(x.ptr<float>(), x.ld, weight.ptr<float>(), weight.ld, out.ptr<float>(), out.ld, x.rows, weight.rows,
              x.cols, 0.0f);
  if (bias.data) {
    const float* b = bias.ptr<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < out.rows; ++r) {
      float* o = out.ptr<float>() + r * out.ld;
      for (int64_t i = 0; i < out.cols; ++i) o[i] += b[i];
    }
  }
}

void CpuBackend::rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  LS_CHECK(q.cols % head_dim == 0 && k.cols % head_dim == 0) << "rope: columns not a multiple of head_dim";
#pragma omp parallel for schedule(static)
  for (int32_t t = 0; t < batch.num_tokens; ++t) {
    const float pos = static_cast<float>(batch.positions[t]);
    std::vector<float> cos_v(half), sin_v(half);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // float32, as transformers computes it
      cos_v[i] = std::cos(angle);
      sin_v[i] = std::sin(angle);
    }
    for (Tensor* m : {&q, &k}) {
      float* row = m->ptr<float>() + t * m->ld;
      for (int64_t h = 0; h < m->cols / head_dim; ++h) {
        float* x = row + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];
          x[i] = x1 * cos_v[i] - x2 * sin_v[i];
          x[i + half] = x2 * cos_v[i] + x1 * sin_v[i];
        }
      }
    }
  }
}

void CpuBackend::kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) {
  const int64_t width = cache.num_kv_heads * cache.head_dim;
  LS_CHECK(k.cols == width && v.cols == width) << "kv_write width mismatch";
  const int64_t capacity = cache.num_blocks * cache.block_size;
  for (int32_t t = 0; t < batch.num_tokens; ++t) {
    const int64_t slot = batch.kv_slots[t];
    LS_CHECK(slot >= 0 && slot < capacity) << "kv slot " << slot << " outside the cache";
    std::memcpy(static_cast<float*>(cache.k) + slot * width, k.ptr<float>() + t * k.ld, width * sizeof(float));
    std::memcpy(static_cast<float*>(cache.v) + slot * width, v.ptr<float>() + t * v.ld, width * sizeof(float));
  }
}

void CpuBackend::silu_mul(Tensor gate_up, Tensor out) {
  const int64_t inter = out.cols;
  LS_CHECK(gate_up.cols == 2 * inter && gate_up.rows == out.rows) << "silu_mul shape mismatch";
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < out.rows; ++r) {
    const float* g = gate_up.ptr<float>() + r * gate_up.ld;
    float* o = out.ptr<float>() + r * out.ld;
    for (int64_t i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * g[i + inter];
  }
}

void CpuBackend::gather_logit_rows(const BatchMeta& batch, Tensor src, Tensor out) {
  LS_CHECK(out.rows == batch.num_logit_rows && out.cols == src.cols) << "gather shape mismatch";
  for (int32_t i = 0; i < batch.num_logit_rows; ++i) {
    const int32_t row = batch.logit_rows[i];
    LS_CHECK(row >= 0 && row < src.rows) << "logit row outside the batch";
    std::memcpy(out.ptr<float>() + i * out.ld, src.ptr<float>() + row * src.ld, src.cols * sizeof(float));
  }
}

void CpuBackend::argmax(Tensor logits, int32_t* tokens) {
  check_f32(logits, "argmax input");
  for (int64_t r = 0; r < logits.rows; ++r) {
    const float* row = logits.ptr<float>() + r * logits.ld;
    int64_t best = 0;
    for (int64_t i = 1; i < logits.cols; ++i)
      if (row[i] > row[best]) best = i;  // first maximum wins, as torch.argmax
    tokens[r] = static_cast<int32_t>(best);
  }
}

}  // namespace ls
