// kv_cache.h: KvCache, the paged K/V memory of every layer in backend memory:
// [layer][K|V][num_blocks][block_size][num_kv_heads][head_dim] in compute dtype. Which blocks a sequence uses
// is decided by kv/block_pool.h; this only owns the memory.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"

namespace ls {

class KvCache {
 public:
  static Result<KvCache> create(Backend& backend, const ModelConfig& config, int32_t num_blocks, int32_t block_size);
  // Bytes of one block across all layers (K and V).
  static size_t bytes_per_block(const ModelConfig& config, int32_t block_size, DType dtype);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  const KvLayer& layer(int64_t l) const { return layers_[l]; }

 private:
  int32_t num_blocks_ = 0;
  int32_t block_size_ = 0;
  Buffer memory_;
  std::vector<KvLayer> layers_;
};

}  // namespace ls
