// adapter_load_overlap.h: the engine's overlapped adapter loads, checked on a given device (the CPU in
// engine_test, the GPU in cuda_kernels_test): a request for an adapter that is not in a device slot holds its
// slot while the slot's copy is in flight; a base request submitted after it runs its steps in the meantime;
// the adapter's request starts only once the copy is done, and generates what it does with the adapter resident.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend.h"

namespace ls::testing {

// A real host-to-device copy of `bytes` queued on the backend's copy queue, so that copies queued after it (an
// adapter's slot load) stay in flight until it is done. Keep it alive until wait_copies(fence).
struct LongCopy {
  LongCopy(Backend& backend, size_t bytes);
  Buffer src, dst;
  uint64_t fence = 0;
};

// Runs the check on `device` ("cpu", "cuda"), holding the backend's copy queue busy with a `block_bytes` copy
// queued ahead of the adapter's (a real copy, so the adapter's copy is in flight for as long as it takes).
// Returns false (with `why`) when the device is not available; failures are gtest failures.
bool check_adapter_load_overlaps_steps(const std::string& device, size_t block_bytes, std::string* why);

}  // namespace ls::testing
