// cuda_test_fixture.h: the gtest fixture of the CUDA op tests: both backends, or a clean skip without a GPU,
// and a fresh random seed per test (printed on failure).
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend_pair.h"
#include "model/forward_batch.h"

namespace ls::testing {

class CudaOpTest : public ::testing::Test {
 public:
  void SetUp() override {
    std::string why;
    if (!BackendPair::make(&p_, &why)) GTEST_SKIP() << "no GPU: " << why;
    seed_ = std::random_device{}();
    rng_.seed(seed_);
  }
  // A BatchMeta on the host (CPU twin) and uploaded (GPU) from one ForwardBatch.
  struct Meta {
    PackedBatch packed;
    BatchMeta gpu;
  };
  Meta meta(const ForwardBatch& fb, int32_t block_size, int32_t num_blocks, int64_t vocab, int32_t lora_slots = 0,
            const PackLayout& layout = {}) {
    Meta m;
    auto packed = pack_batch(fb, block_size, num_blocks, vocab, lora_slots, layout);
    EXPECT_TRUE(packed.is_ok()) << packed.status().to_string();
    m.packed = std::move(packed).value();
    m.gpu = p_.gpu->upload_batch(m.packed.meta);
    return m;
  }
  std::string trace() const { return "seed " + std::to_string(seed_); }
  // Switches the CUDA backend's kernel paths for the rest of the test (each test starts from the defaults).
  template <typename Change>
  void set_cuda_options(Change change) {
    CudaBackend* cuda = as_cuda_backend(*p_.gpu);
    ASSERT_NE(cuda, nullptr);
    CudaBackendOptions o = cuda->options();
    change(o);
    cuda->set_options(o);
  }

  BackendPair p_;
  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

}  // namespace ls::testing
