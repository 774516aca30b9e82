// kv_cache.cpp: KV memory allocation and per-layer views.
#include "model/kv_cache.h"

namespace ls {

size_t KvCache::bytes_per_block(const ModelConfig& c, int32_t block_size, DType dtype) {
  return static_cast<size_t>(2 * c.num_layers * block_size * c.kv_size()) * dtype_size(dtype);
}

Result<KvCache> KvCache::create(Backend& backend, const ModelConfig& c, int32_t num_blocks, int32_t block_size) {
  if (num_blocks <= 0 || block_size <= 0) return invalid_argument("KV cache needs positive num_blocks and block_size");
  KvCache cache;
  cache.num_blocks_ = num_blocks;
  cache.block_size_ = block_size;
  const DType dtype = backend.compute_dtype();
  LS_ASSIGN_OR_RETURN(cache.memory_, backend.allocate(bytes_per_block(c, block_size, dtype) * num_blocks));
  const size_t half_layer = static_cast<size_t>(num_blocks) * block_size * c.kv_size() * dtype_size(dtype);
  char* base = static_cast<char*>(cache.memory_.data());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    KvLayer layer;
    layer.k = base + (2 * l) * half_layer;
    layer.v = base + (2 * l + 1) * half_layer;
    layer.num_blocks = num_blocks;
    layer.block_size = block_size;
    layer.num_kv_heads = c.num_kv_heads;
    layer.head_dim = c.head_dim;
    cache.layers_.push_back(layer);
  }
  return cache;
}

}  // namespace ls
