// cuda_bench.cpp: measurements of the device's ceilings for bench/engine_bench and the kernel microbenchmarks.
#include "cuda_bench.h"

#include <cuda_profiler_api.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/timing.h"

namespace ls {
namespace {

CudaBackend& cuda_of(Backend& backend) {
  CudaBackend* b = as_cuda_backend(backend);
  LS_CHECK(b) << "a CUDA measurement on the " << backend.name() << " backend";
  return *b;
}

}  // namespace

void cuda_profiled(Backend& backend, const std::function<void()>& enqueue) {
  CudaBackend& b = cuda_of(backend);
  LS_CUDA_CHECK(cudaStreamSynchronize(b.stream()));
  LS_CUDA_CHECK(cudaProfilerStart());
  enqueue();
  LS_CUDA_CHECK(cudaStreamSynchronize(b.stream()));
  LS_CUDA_CHECK(cudaProfilerStop());
}

double cuda_time_ms(Backend& backend, const std::function<void()>& enqueue) {
  CudaBackend& b = cuda_of(backend);
  cudaEvent_t start, stop;
  LS_CUDA_CHECK(cudaEventCreate(&start));
  LS_CUDA_CHECK(cudaEventCreate(&stop));
  LS_CUDA_CHECK(cudaEventRecord(start, b.stream()));
  enqueue();
  LS_CUDA_CHECK(cudaEventRecord(stop, b.stream()));
  LS_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  LS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

std::string cuda_device_description(Backend& backend) {
  CudaBackend& b = cuda_of(backend);
  cudaDeviceProp prop{};
  LS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  char text[640];
  std::snprintf(text, sizeof(text), "%s, %d SMs, %.1f GiB", prop.name, b.num_sms(),
                static_cast<double>(prop.totalGlobalMem) / (1u << 30));
  return text;
}

double cuda_copy_bandwidth(Backend& backend, size_t bytes, int reps) {
  CudaBackend& b = cuda_of(backend);
  Buffer src = backend.allocate(bytes).value(), dst = backend.allocate(bytes).value();
  backend.fill_uniform(Tensor::make(src.data(), DType::kF32, 1, static_cast<int64_t>(bytes / 4)), 1, -1.0f, 1.0f);
  auto copy = [&] { LS_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, b.stream())); };
  cuda_time_ms(backend, copy);  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) ms.push_back(cuda_time_ms(backend, copy));
  return 2.0 * static_cast<double>(bytes) / (median(ms) * 1e-3);
}

double cuda_gemm_flops(Backend& backend, int64_t n, int reps) {
  const size_t bytes = static_cast<size_t>(n * n) * 2;
  Buffer x = backend.allocate(bytes).value(), w = backend.allocate(bytes).value(), out = backend.allocate(bytes).value();
  const Tensor tx = x.as_tensor(DType::kBF16, n, n), tw = w.as_tensor(DType::kBF16, n, n);
  const Tensor to = out.as_tensor(DType::kBF16, n, n);
  backend.fill_uniform(tx, 2, -1.0f, 1.0f);
  backend.fill_uniform(tw, 3, -1.0f, 1.0f);
  auto gemm = [&] { backend.linear(tx, tw, Tensor{}, to); };
  cuda_time_ms(backend, gemm);  // plan and tuning
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) ms.push_back(cuda_time_ms(backend, gemm));
  return 2.0 * static_cast<double>(n) * n * n / (median(ms) * 1e-3);
}

}  // namespace ls
