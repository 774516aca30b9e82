// cpu_backend.cpp: CpuBackend memory, weights (allocation, packing, the registry of packed matrices), the
// projections (linear over packed panels, cpu_gemm.h) and the element-wise ops (norms, embedding, RoPE, KV
// write, activation, gathers). Attention and LoRA live in cpu_attention.cpp and cpu_lora.cpp.
#include "backend/cpu/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_gemm.h"
#include "backend/random_fill.h"

namespace ls {

using cpu::PackedMatrix;
using cpu::WeightFormat;

Result<WeightFormat> parse_cpu_weights(const std::string& name) {
  if (name == "f32") return WeightFormat::kF32;
  if (name == "bf16") return WeightFormat::kBF16;
  if (name == "int8") return WeightFormat::kI8;
  return invalid_argument("cpu weights must be f32, bf16 or int8, not \"" + name + "\"");
}

namespace {

const cpu::CpuKernels& best_kernels() {
  if (const cpu::CpuKernels* k = cpu::avx512_kernels()) return *k;
  if (const cpu::CpuKernels* k = cpu::avx2_kernels()) return *k;
  return cpu::portable_kernels();
}

int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

// Host memory with kOverreadBytes of slack past the end (vector kernels may read a full vector past a row);
// large blocks are 2 MiB aligned and asked to be huge pages (weight streams then cross fewer TLB entries).
void* aligned_host_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t total = (bytes + cpu::kOverreadBytes + 63) / 64 * 64;
  if (total >= 2 * kHuge) {
    void* p = std::aligned_alloc(kHuge, (total + kHuge - 1) / kHuge * kHuge);
    if (p) madvise(p, (total + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
    return p;
  }
  return std::aligned_alloc(64, total);
}

void check_f32(const Tensor& t, const char* what) {
  LS_CHECK(t.dtype == DType::kF32) << "cpu backend: " << what << " must be float32";
}

float rms_scale(const float* x, int64_t n, float eps) {
  double sum = 0;  // float32 in transformers; double here keeps the reference at least as precise
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
}

// Rows per parallel share so that each share has at least ~16K elements of work.
int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

}  // namespace

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : weights_(options.weights),
      kernels_(options.kernels ? options.kernels : &best_kernels()),
      pool_(options.num_threads > 0 ? options.num_threads : default_threads()),
      registry_(std::make_shared<WeightRegistry>()) {}

std::unique_ptr<Backend> make_cpu_backend(int num_threads, const std::string& weights) {
  auto format = parse_cpu_weights(weights);
  LS_CHECK(format.is_ok()) << format.status().to_string();
  CpuBackendOptions options;
  options.num_threads = num_threads;
  options.weights = format.value();
  return std::make_unique<CpuBackend>(options);
}

Backend::MemoryInfo CpuBackend::memory_info() const {
  MemoryInfo info;
  const long page = sysconf(_SC_PAGESIZE);
  info.total = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(page);
  info.free = static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<size_t>(page);
  return info;
}

Result<Buffer> CpuBackend::allocate(size_t bytes) {
  void* p = aligned_host_alloc(bytes);
  if (!p) return resource_exhausted("host allocation of " + std::to_string(bytes) + " bytes failed");
  return Buffer(p, bytes, [](void* q) { std::free(q); });
}

void CpuBackend::copy_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

uint64_t CpuBackend::copy_beside(const HostCopy* copies, size_t n, CopyAfter after) {
  // The worker runs Backend's synchronous row-by-row copy (copy_to_device is a memcpy here).
  return copies_.post([this, after, batch = std::vector<HostCopy>(copies, copies + n)] {
    Backend::copy_beside(batch.data(), batch.size(), after);
  });
}
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::upload_f32(void* dst, const float* src, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }

const PackedMatrix* CpuBackend::packed(const Tensor& w) const {
  std::lock_guard<std::mutex> lock(registry_->mutex);
  auto it = registry_->matrices.find(w.data);
  return it == registry_->matrices.end() ? nullptr : &it->second;
}

Result<WeightMatrix> CpuBackend::allocate_weight(int64_t rows, int64_t cols, DType source) {
  LS_CHECK(rows > 0 && cols > 0) << "cpu backend: empty weight matrix";
  const WeightFormat format = weights_ == WeightFormat::kBF16 && source == DType::kF16 ? WeightFormat::kF16 : weights_;
  const size_t bytes = cpu::packed_matrix_bytes(format, rows, cols);
  void* p = aligned_host_alloc(bytes);
  if (!p) return resource_exhausted("host allocation of " + std::to_string(bytes) + " bytes failed");
  {
    std::lock_guard<std::mutex> lock(registry_->mutex);
    registry_->matrices[p] = cpu::packed_matrix_at(p, format, rows, cols);
  }
  WeightMatrix w;
  w.memory = Buffer(p, bytes, [registry = registry_](void* q) {
    {
      std::lock_guard<std::mutex> lock(registry->mutex);
      registry->matrices.erase(q);
    }
    std::free(q);
  });
  w.tensor = Tensor{p, cpu::weight_format_dtype(format), rows, cols, cols};
  return w;
}

void CpuBackend::upload_weight(const Tensor& w, const float* src) {
  const PackedMatrix* m = packed(w);
  if (!m) return Backend::upload_weight(w, src);
  pool_.parallel_for(m->panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) cpu::pack_panel(*m, p, src + p * cpu::kPanelCols * m->cols, m->cols);
  });
}

void CpuBackend::fill_uniform(Tensor t, uint64_t seed, float lo, float hi) {
  if (const PackedMatrix* m = packed(t)) {  // generate a panel's rows, then pack them
    pool_.parallel_for(m->panels, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> rows(static_cast<size_t>(cpu::kPanelCols * m->cols));
      for (int64_t p = begin; p < end; ++p) {
        const int64_t first = p * cpu::kPanelCols, n = std::min<int64_t>(cpu::kPanelCols, m->rows - first);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < m->cols; ++c)
            rows[r * m->cols + c] = uniform_at(seed, static_cast<uint64_t>((first + r) * m->cols + c), lo, hi);
        cpu::pack_panel(*m, p, rows.data(), m->cols);
      }
    });
    return;
  }
  check_f32(t, "fill_uniform target");
  pool_.parallel_for(t.rows, row_grain(t.cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = t.ptr<float>() + r * t.ld;
      for (int64_t c = 0; c < t.cols; ++c) row[c] = uniform_at(seed, static_cast<uint64_t>(r * t.cols + c), lo, hi);
    }
  });
}

void CpuBackend::stage_lora(void* a, void* b, const float* host_a, const float* host_b, int64_t rank, int64_t in_dim,
                             int64_t out_dim) {
  // Both laid out to be read as single streams (cpu_kernels.h dot_rows_blocked, cpu_gemm.h PanelSource::lora_bt):
  // A in blocks of 16 ranks, each chunk-interleaved; B^T in panels of 64 output columns, each k-major.
  const bool bf16 = lora_bf16();
  auto put = [bf16](void* base, int64_t i, float v) {
    if (bf16) {
      static_cast<uint16_t*>(base)[i] = float_to_bf16(v);
    } else {
      static_cast<float*>(base)[i] = v;
    }
  };
  const int64_t full = in_dim / 16, tail = in_dim % 16;
  for (int64_t r0 = 0; r0 < rank; r0 += 16) {
    const int64_t nb = std::min<int64_t>(16, rank - r0), block = r0 * in_dim;
    for (int64_t j = 0; j < nb; ++j)
      for (int64_t i = 0; i < in_dim; ++i) {
        const int64_t at = i / 16 < full ? (i / 16) * 16 * nb + 16 * j + i % 16 : full * 16 * nb + j * tail + i % 16;
        put(a, block + at, host_a[(r0 + j) * in_dim + i]);
      }
  }
  const int64_t rows = bf16 ? (rank + 1) / 2 * 2 : rank;  // bf16 pairs: an odd rank gets a zero row
  for (int64_t c0 = 0; c0 < out_dim; c0 += cpu::kPanelCols) {
    const int64_t width = std::min<int64_t>(cpu::kPanelCols, out_dim - c0), panel = c0 * rows;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < width; ++c) {
        const float v = r < rank ? host_b[(c0 + c) * rank + r] : 0.0f;
        put(b, panel + (bf16 ? (r / 2) * 2 * width + 2 * c + (r & 1) : r * width + c), v);
      }
  }
}

void CpuBackend::fill_lora_uniform(void* a, void* b, int64_t rank, int64_t in_dim, int64_t out_dim, uint64_t seed,
                                   float a_bound, float b_bound) {
  std::vector<float> host_a(static_cast<size_t>(rank * in_dim)), host_b(static_cast<size_t>(out_dim * rank));
  for (size_t i = 0; i < host_a.size(); ++i) host_a[i] = uniform_at(seed, i, -a_bound, a_bound);
  for (size_t i = 0; i < host_b.size(); ++i) host_b[i] = uniform_at(seed + 1, i, -b_bound, b_bound);
  stage_lora(a, b, host_a.data(), host_b.data(), rank, in_dim, out_dim);  // backend memory is host memory
}

void CpuBackend::embedding(const BatchMeta& batch, Tensor table, Tensor out) {
  check_f32(out, "embedding output");
  LS_CHECK(out.rows == batch.num_tokens && out.cols == table.cols) << "embedding shape mismatch";
  const PackedMatrix* m = packed(table);
  if (!m) check_f32(table, "embedding table");
  for (int32_t t = 0; t < batch.num_tokens; ++t) {
    const int32_t id = batch.token_ids[t];
    LS_CHECK(id >= 0 && id < table.rows) << "token id " << id << " outside the vocabulary";
    if (m) {
      cpu::unpack_row(*m, id, out.ptr<float>() + t * out.ld);
    } else {
      std::memcpy(out.ptr<float>() + t * out.ld, table.ptr<float>() + id * table.ld, table.cols * sizeof(float));
    }
  }
}

void CpuBackend::rms_norm(Tensor x, Tensor weight, float eps, Tensor out) {
  check_f32(x, "rms_norm input");
  LS_CHECK(weight.cols == x.cols && out.rows == x.rows && out.cols == x.cols) << "rms_norm shape mismatch";
  const float* w = weight.ptr<float>();
  pool_.parallel_for(x.rows, row_grain(x.cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x.ptr<float>() + r * x.ld;
      float* o = out.ptr<float>() + r * out.ld;
      const float s = rms_scale(xr, x.cols, eps);
      for (int64_t i = 0; i < x.cols; ++i) o[i] = w[i] * (xr[i] * s);
    }
  });
}

void CpuBackend::add_rms_norm(Tensor residual, Tensor x, Tensor weight, float eps, Tensor out) {
  LS_CHECK(residual.rows == x.rows && residual.cols == x.cols) << "add_rms_norm shape mismatch";
  LS_CHECK(weight.cols == x.cols && out.rows == x.rows && out.cols == x.cols) << "add_rms_norm shape mismatch";
  const float* w = weight.ptr<float>();
  pool_.parallel_for(x.rows, row_grain(x.cols), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* res = residual.ptr<float>() + r * residual.ld;
      const float* xr = x.ptr<float>() + r * x.ld;
      for (int64_t i = 0; i < x.cols; ++i) res[i] += xr[i];
      float* o = out.ptr<float>() + r * out.ld;
      const float s = rms_scale(res, x.cols, eps);
      for (int64_t i = 0; i < x.cols; ++i) o[i] = w[i] * (res[i] * s);
    }
  });
}

void CpuBackend::linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
  check_f32(x, "linear input");
  check_f32(out, "linear output");
  LS_CHECK(x.cols == weight.cols && out.rows == x.rows && out.cols == weight.rows)
      << "linear shape mismatch: x " << x.rows << "x" << x.cols << " w " << weight.rows << "x" << weight.cols
      << " out " << out.rows << "x" << out.cols;
  const PackedMatrix* m = packed(weight);
  PackedMatrix local;
  if (!m) {  // a plain float32 matrix (the CUDA tests' twins): pack it for this call, same arithmetic
    check_f32(weight, "linear weight");
    scratch_.resize(cpu::packed_matrix_bytes(WeightFormat::kF32, weight.rows, weight.cols) / sizeof(float) + 64);
    local = cpu::packed_matrix_at(scratch_.data(), WeightFormat::kF32, weight.rows, weight.cols);
    pool_.parallel_for(local.panels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        cpu::pack_panel(local, p, weight.ptr<float>() + p * cpu::kPanelCols * weight.ld, weight.ld);
    });
    m = &local;
  }
  if (bias.data) check_f32(bias, "linear bias");
  cpu::gemm(pool_, *kernels_, cpu::PanelSource::packed(*m), x.ptr<float>(), x.ld, x.rows,
            bias.data ? bias.ptr<float>() : nullptr, out.ptr<float>(), out.ld, false);
}

void CpuBackend::rope(const BatchMeta& batch, Tensor q, Tensor k, const float* inv_freq, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  LS_CHECK(q.cols % head_dim == 0 && k.cols % head_dim == 0) << "rope: columns not a multiple of head_dim";
  pool_.parallel_for(batch.num_tokens, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> cos_v(half), sin_v(half);
    for (int64_t t = begin; t < end; ++t) {
      const float pos = static_cast<float>(batch.positions[t]);
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
  });
}

void CpuBackend::kv_write(const BatchMeta& batch, Tensor k, Tensor v, const KvLayer& cache) {
  const int64_t width = cache.num_kv_heads * cache.head_dim;
  LS_CHECK(k.cols == width && v.cols == width) << "kv_write width mismatch";
  const int64_t capacity = cache.num_blocks * cache.block_size;
  for (int32_t t = 0; t < batch.num_tokens; ++t) {
    const int64_t slot = batch.kv_slots[t];
    if (slot == -1) continue;  // a padded step's padding row
    LS_CHECK(slot >= 0 && slot < capacity) << "kv slot " << slot << " outside the cache";
    std::memcpy(static_cast<float*>(cache.k) + slot * width, k.ptr<float>() + t * k.ld, width * sizeof(float));
    std::memcpy(static_cast<float*>(cache.v) + slot * width, v.ptr<float>() + t * v.ld, width * sizeof(float));
  }
}

void CpuBackend::silu_mul(Tensor gate_up, Tensor out) {
  const int64_t inter = out.cols;
  LS_CHECK(gate_up.cols == 2 * inter && gate_up.rows == out.rows) << "silu_mul shape mismatch";
  pool_.parallel_for(out.rows, row_grain(inter), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* g = gate_up.ptr<float>() + r * gate_up.ld;
      kernels_->silu_mul(g, g + inter, out.ptr<float>() + r * out.ld, inter);
    }
  });
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
