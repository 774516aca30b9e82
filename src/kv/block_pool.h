// block_pool.h: BlockPool hands out fixed-size KV cache blocks (by id) from a free list, and BlockTable is
// one sequence's list of blocks, grown as its token count grows. Pure host bookkeeping: the cache memory
// itself belongs to the model (model/kv_cache.h). Owned by the engine thread; not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace ls {

class BlockPool {
 public:
  BlockPool(int32_t num_blocks, int32_t block_size);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return num_blocks_; }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t blocks_for_tokens(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + block_size_ - 1) / block_size_);
  }

  // n blocks, or kResourceExhausted leaving the pool unchanged.
  Result<std::vector<int32_t>> allocate(int32_t n);
  void release(const std::vector<int32_t>& blocks);

 private:
  int32_t num_blocks_;
  int32_t block_size_;
  std::vector<int32_t> free_;
  std::vector<uint8_t> in_use_;
};

// The blocks of one sequence. Releases them to the pool on destruction.
class BlockTable {
 public:
  explicit BlockTable(BlockPool& pool) : pool_(&pool) {}
  ~BlockTable();
  BlockTable(BlockTable&& o) noexcept;
  BlockTable& operator=(BlockTable&&) = delete;
  BlockTable(const BlockTable&) = delete;

  // Grows the table to hold num_tokens tokens.
  Status reserve(int64_t num_tokens);
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // The cache slot (block * block_size + offset) of token position pos.
  int32_t slot_of(int64_t pos) const;

 private:
  BlockPool* pool_;
  std::vector<int32_t> blocks_;
};

}  // namespace ls
