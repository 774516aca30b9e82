// cuda_adapter_load_test.cpp: overlapped adapter loads on the GPU through the real engine (demo model): with a
// 4 GiB host-to-device copy queued ahead on the copy stream, a base request submitted after an adapter request
// runs all its steps while the adapter's slot is loading, and the adapter's request starts only after its slot
// is ready and generates what it does once resident (tests/engine/adapter_load_overlap.h). Skips without a GPU.
#include <gtest/gtest.h>

#include "adapter_load_overlap.h"

namespace ls {
namespace {

TEST(CudaAdapterLoad, SlotLoadsOverlapTheSteps) {
  std::string why;
  if (!testing::check_adapter_load_overlaps_steps("cuda", size_t{4} << 30, &why)) GTEST_SKIP() << "no GPU: " << why;
}

}  // namespace
}  // namespace ls
