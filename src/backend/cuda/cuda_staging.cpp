// cuda_staging.cpp: pinned double buffers and their copy events.
#include "backend/cuda/cuda_staging.h"

#include <utility>

#include "backend/cuda/cuda_check.h"

namespace ls::cuda {

Result<StagedUpload> StagedUpload::create(size_t capacity) {
  StagedUpload s;
  s.capacity_ = capacity;
  for (int i = 0; i < 2; ++i) {
    if (cudaMallocHost(&s.host_[i], capacity) != cudaSuccess) return resource_exhausted("pinned host allocation failed");
    if (cudaEventCreateWithFlags(&s.copied_[i], cudaEventDisableTiming) != cudaSuccess)
      return internal_error("cudaEventCreate failed");
  }
  if (cudaMalloc(&s.device_, capacity) != cudaSuccess) return resource_exhausted("device allocation failed");
  return s;
}

StagedUpload& StagedUpload::operator=(StagedUpload&& o) noexcept {
  if (this != &o) {
    release();
    capacity_ = std::exchange(o.capacity_, 0);
    for (int i = 0; i < 2; ++i) {
      host_[i] = std::exchange(o.host_[i], nullptr);
      copied_[i] = std::exchange(o.copied_[i], nullptr);
    }
    device_ = std::exchange(o.device_, nullptr);
    next_ = o.next_;
  }
  return *this;
}

StagedUpload::~StagedUpload() { release(); }

void StagedUpload::release() {
  for (int i = 0; i < 2; ++i) {
    if (copied_[i]) cudaEventSynchronize(copied_[i]);
    if (copied_[i]) cudaEventDestroy(copied_[i]);
    if (host_[i]) cudaFreeHost(host_[i]);
    copied_[i] = nullptr;
    host_[i] = nullptr;
  }
  if (device_) cudaFree(device_);
  device_ = nullptr;
}

void* StagedUpload::begin() {
  LS_CUDA_CHECK(cudaEventSynchronize(copied_[next_]));
  return host_[next_];
}

void StagedUpload::commit(size_t bytes, cudaStream_t stream) {
  LS_CHECK(bytes <= capacity_) << "staged upload of " << bytes << " bytes exceeds its " << capacity_ << " bytes";
  if (bytes > 0) LS_CUDA_CHECK(cudaMemcpyAsync(device_, host_[next_], bytes, cudaMemcpyHostToDevice, stream));
  LS_CUDA_CHECK(cudaEventRecord(copied_[next_], stream));
  next_ ^= 1;
}

}  // namespace ls::cuda
