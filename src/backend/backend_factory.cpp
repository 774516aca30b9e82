// backend_factory.cpp: make_backend, choosing a backend by device name.
#include "backend/backend.h"

#ifdef LORASERVE_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  BackendOptions options;
  options.device = device;
  return make_backend(options);
}

Result<std::unique_ptr<Backend>> make_backend(const BackendOptions& options) {
  const std::string& device = options.device;
  if (options.cpu_threads < 0) return invalid_argument("cpu threads must be >= 0");
  if (device == "cpu") return make_cpu_backend(options.cpu_threads);
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
