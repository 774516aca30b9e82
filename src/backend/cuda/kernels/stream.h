// stream.h: Stream, where a launcher queues its kernels: the CUDA stream, and whether the launches carry the
// programmatic-dependent-launch attribute (CudaBackendOptions::pdl; common.cuh's launch() reads it). Passed by
// value to every launcher, so no setting hides in a global.
#pragma once

#include <cuda_runtime_api.h>

namespace ls::cuda {

struct Stream {
  cudaStream_t stream = nullptr;
  bool pdl = true;  // let each kernel's launch overlap the previous kernel's tail (griddepcontrol)
};

}  // namespace ls::cuda
