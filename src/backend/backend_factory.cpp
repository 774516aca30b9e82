// backend_factory.cpp: make_backend, choosing a backend by device name.
#include "backend/backend.h"

#ifdef LORASERVE_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace ls {

Result<std::unique_ptr<Backend>> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda") {
#ifdef LORASERVE_WITH_CUDA
    return make_cuda_backend();
#else
    return unsupported("this build has no CUDA backend (configure with -DLORASERVE_CUDA=ON)");
#endif
  }
  return invalid_argument("unknown device \"" + device + "\" (cpu or cuda)");
}

}  // namespace ls
