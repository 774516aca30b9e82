// backend_pair.h: what the GPU tests share: the CPU and CUDA backends side by side, tensors holding the same
// values in both (random, rounded to bf16 first so both backends start from identical inputs), downloads of
// CUDA tensors, poisoning of outputs (NaN, so an element a kernel never wrote fails the comparison), the
// norm-wise relative error bf16 results are judged by, and a KV cache layer in both backends.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"

namespace ls::testing {

struct BackendPair {
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<Backend> gpu;
  // False (with the reason in `why`) when no usable GPU is present.
  static bool make(BackendPair* pair, std::string* why);
};

// A [rows, cols] tensor in both backends (float32 on the CPU, bf16 or float32 on the GPU), a column slice at
// column `offset` of a [rows, ld] parent when ld > cols.
struct Twin {
  Buffer cpu_mem, gpu_mem;
  Tensor cpu, gpu;
  std::vector<float> host;  // the values, [rows, cols]
};

Twin make_twin(BackendPair& p, int64_t rows, int64_t cols, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f,
               int64_t ld = 0, int64_t offset = 0, bool gpu_f32 = false);
// Uploads host values [rows, cols] into an existing twin (both sides).
void set_twin(BackendPair& p, Twin& t, const std::vector<float>& values);

// The tensor's [rows, cols] values as float32 on the host (waits for the GPU).
std::vector<float> download(Backend& b, const Tensor& t);

// Fills t (GPU, bf16 or float32) with NaN.
void poison(Backend& gpu, const Tensor& t);

// ||a - b|| / ||b||; infinity when a holds a NaN or the sizes differ.
double rel_error(const std::vector<float>& a, const std::vector<float>& b);

// One layer of a paged KV cache in both backends: k and v [num_blocks * block_size, kv_heads * head_dim] with random
// values in [-2, 2], and the KvLayer each backend reads them through.
struct CacheTwin {
  Twin k, v;
  KvLayer cpu, gpu;
};
CacheTwin make_cache_twin(BackendPair& p, std::mt19937& rng, int64_t kv_heads, int64_t head_dim, int32_t block_size,
                          int32_t num_blocks);

// Int32 array in backend memory (for slot tables and token outputs).
Buffer upload_ints(Backend& b, const std::vector<int32_t>& v);
std::vector<int32_t> download_ints(Backend& b, const void* data, size_t n);

inline float round_bf16(float v) { return bf16_to_float(float_to_bf16(v)); }

}  // namespace ls::testing
