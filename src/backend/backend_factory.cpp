// backend_factory.cpp: make_backend, choosing a backend by device name; the Backend defaults that need code.
#include "backend/backend.h"

#include <cstring>

#ifdef LORASERVE_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {

void Backend::stage_lora(void* a, void* b, const float* host_a, const float* host_b, int64_t rank, int64_t in_dim,
                         int64_t out_dim) {
  const size_t n[2] = {static_cast<size_t>(rank * in_dim), static_cast<size_t>(out_dim * rank)};
  void* dst[2] = {a, b};
  const float* src[2] = {host_a, host_b};
  for (int i = 0; i < 2; ++i) {
    if (compute_dtype() == DType::kBF16) {
      auto* out = static_cast<uint16_t*>(dst[i]);
      for (size_t j = 0; j < n[i]; ++j) out[j] = float_to_bf16(src[i][j]);
    } else {
      std::memcpy(dst[i], src[i], n[i] * sizeof(float));
    }
  }
}

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  BackendOptions options;
  options.device = device;
  return make_backend(options);
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  const std::string& device = options.device;
  if (options.cpu_threads < 0) return invalid_argument("cpu threads must be >= 0");
  if (options.cpu_weights != "f32" && options.cpu_weights != "bf16" && options.cpu_weights != "int8")
    return invalid_argument("cpu weights must be f32, bf16 or int8, not \"" + options.cpu_weights + "\"");
  if (device == "cpu") return make_cpu_backend(options.cpu_threads, options.cpu_weights);
  if (device == "cuda") {
#ifdef LORASERVE_WITH_CUDA
    return make_cuda_backend(options.cuda);
#else
    return unsupported("this build has no CUDA backend (configure with -DLORASERVE_CUDA=ON)");
#endif
  }
  return invalid_argument("unknown device \"" + device + "\" (cpu or cuda)");
}

}  // namespace ls
