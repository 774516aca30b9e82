// backend_pair.cpp: twin tensors, downloads and error norms for the GPU tests.
#include "backend_pair.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace ls::testing {

bool BackendPair::make(BackendPair* pair, std::string* why) {
  auto gpu = make_backend("cuda");
  if (!gpu.is_ok()) {
    *why = gpu.status().to_string();
    return false;
  }
  pair->gpu = std::move(gpu).value();
  pair->cpu = make_cpu_backend();
  return true;
}

namespace {

Tensor make_side(Backend& b, Buffer& mem, DType dtype, int64_t rows, int64_t cols, int64_t ld, int64_t offset) {
  mem = b.allocate(static_cast<size_t>(rows * ld) * dtype_size(dtype)).value();
  Tensor parent = Tensor::make(mem.data(), dtype, rows, ld);
  // Padding columns hold values no op may read into a result: large, so a stray read shows.
  b.fill_uniform(parent, 99, 1e4f, 2e4f);
  return ld == cols ? parent : parent.col_slice(offset, cols);
}

void write_rows(Backend& b, const Tensor& t, const std::vector<float>& values) {
  if (t.contiguous()) {  // one copy (each copy waits for the device)
    if (t.dtype == DType::kF32) {
      b.copy_to_device(t.data, values.data(), values.size() * sizeof(float));
    } else {
      std::vector<uint16_t> all(values.size());
      for (size_t i = 0; i < values.size(); ++i) all[i] = float_to_bf16(values[i]);
      b.copy_to_device(t.data, all.data(), all.size() * sizeof(uint16_t));
    }
    return;
  }
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* src = values.data() + r * t.cols;
    char* dst = static_cast<char*>(t.data) + r * t.ld * static_cast<int64_t>(t.element_size());
    if (t.dtype == DType::kF32) {
      b.copy_to_device(dst, src, static_cast<size_t>(t.cols) * sizeof(float));
    } else {
      std::vector<uint16_t> row(static_cast<size_t>(t.cols));
      for (int64_t c = 0; c < t.cols; ++c) row[c] = float_to_bf16(src[c]);
      b.copy_to_device(dst, row.data(), row.size() * sizeof(uint16_t));
    }
  }
}

}  // namespace

Twin make_twin(BackendPair& p, int64_t rows, int64_t cols, std::mt19937& rng, float lo, float hi, int64_t ld,
               int64_t offset, bool gpu_f32) {
  if (ld == 0) ld = cols;
  Twin t;
  t.cpu = make_side(*p.cpu, t.cpu_mem, DType::kF32, rows, cols, ld, offset);
  t.gpu = make_side(*p.gpu, t.gpu_mem, gpu_f32 ? DType::kF32 : DType::kBF16, rows, cols, ld, offset);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (float& v : values) v = round_bf16(dist(rng));
  set_twin(p, t, values);
  return t;
}

void set_twin(BackendPair& p, Twin& t, const std::vector<float>& values) {
  t.host = values;
  write_rows(*p.cpu, t.cpu, values);
  write_rows(*p.gpu, t.gpu, values);
}

std::vector<float> download(Backend& b, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.rows * t.cols));
  const size_t elem = t.element_size();
  if (t.contiguous()) {
    std::vector<char> all(out.size() * elem);
    b.copy_to_host(all.data(), t.data, all.size());
    for (size_t i = 0; i < out.size(); ++i) {
      if (t.dtype == DType::kF32) {
        std::memcpy(&out[i], all.data() + i * 4, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, all.data() + i * 2, 2);
        out[i] = bf16_to_float(h);
      }
    }
    return out;
  }
  std::vector<char> row(static_cast<size_t>(t.cols) * elem);
  for (int64_t r = 0; r < t.rows; ++r) {
    b.copy_to_host(row.data(), static_cast<const char*>(t.data) + r * t.ld * static_cast<int64_t>(elem), row.size());
    for (int64_t c = 0; c < t.cols; ++c) {
      float v;
      if (t.dtype == DType::kF32) {
        std::memcpy(&v, row.data() + c * 4, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, row.data() + c * 2, 2);
        v = bf16_to_float(h);
      }
      out[r * t.cols + c] = v;
    }
  }
  return out;
}

void poison(Backend& gpu, const Tensor& t) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  gpu.fill_uniform(t, 0, nan, nan);
}

double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - b[i];
    diff += d * d;
    norm += static_cast<double>(b[i]) * b[i];
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

Buffer upload_ints(Backend& b, const std::vector<int32_t>& v) {
  Buffer buf = b.allocate(std::max<size_t>(v.size(), 1) * sizeof(int32_t)).value();
  b.copy_to_device(buf.data(), v.data(), v.size() * sizeof(int32_t));
  return buf;
}

std::vector<int32_t> download_ints(Backend& b, const void* data, size_t n) {
  std::vector<int32_t> out(n);
  b.copy_to_host(out.data(), data, n * sizeof(int32_t));
  return out;
}

CacheTwin make_cache_twin(BackendPair& p, std::mt19937& rng, int64_t kv_heads, int64_t head_dim, int32_t block_size,
                          int32_t num_blocks) {
  CacheTwin c;
  const int64_t rows = static_cast<int64_t>(num_blocks) * block_size;
  c.k = make_twin(p, rows, kv_heads * head_dim, rng, -2, 2);
  c.v = make_twin(p, rows, kv_heads * head_dim, rng, -2, 2);
  for (KvLayer* l : {&c.cpu, &c.gpu}) {
    l->num_blocks = num_blocks;
    l->block_size = block_size;
    l->num_kv_heads = kv_heads;
    l->head_dim = head_dim;
  }
  c.cpu.k = c.k.cpu.data;
  c.cpu.v = c.v.cpu.data;
  c.gpu.k = c.k.gpu.data;
  c.gpu.v = c.v.gpu.data;
  return c;
}

}  // namespace ls::testing
