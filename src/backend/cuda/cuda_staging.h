// cuda_staging.h: StagedUpload, a fixed device region filled from double-buffered pinned host memory. The host
// writes the next payload into one pinned buffer while the copy out of the other may still be queued behind
// the GPU's current work; the device region never moves, so CUDA graphs may read it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/status.h"

namespace ls::cuda {

class StagedUpload {
 public:
  static Result<StagedUpload> create(size_t capacity);
  StagedUpload() = default;
  StagedUpload(StagedUpload&& o) noexcept { *this = static_cast<StagedUpload&&>(o); }
  StagedUpload& operator=(StagedUpload&& o) noexcept;
  StagedUpload(const StagedUpload&) = delete;
  StagedUpload& operator=(const StagedUpload&) = delete;
  ~StagedUpload();

  size_t capacity() const { return capacity_; }
  void* device() const { return device_; }
  // The pinned buffer to fill next; waits until its previous copy has left it.
  void* begin();
  // Queues the copy of the first `bytes` of that buffer into the device region on `stream`.
  void commit(size_t bytes, cudaStream_t stream);

 private:
  void release();
  size_t capacity_ = 0;
  void* host_[2] = {nullptr, nullptr};
  cudaEvent_t copied_[2] = {nullptr, nullptr};
  void* device_ = nullptr;
  int next_ = 0;
};

}  // namespace ls::cuda
