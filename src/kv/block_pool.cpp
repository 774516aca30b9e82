// block_pool.cpp: free-list allocation of KV blocks.
#include "kv/block_pool.h"

#include "core/check.h"

namespace ls {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size), in_use_(static_cast<size_t>(num_blocks), 0) {
  LS_CHECK(num_blocks > 0 && block_size > 0) << "block pool needs blocks";
  free_.reserve(num_blocks);
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
}

Result<std::vector<int32_t>> BlockPool::allocate(int32_t n) {
  if (n < 0 || n > num_free())
    return resource_exhausted("KV cache full: need " + std::to_string(n) + " blocks, " +
                              std::to_string(num_free()) + " free");
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    out[i] = free_.back();
    free_.pop_back();
    in_use_[out[i]] = 1;
  }
  return out;
}

void BlockPool::release(const std::vector<int32_t>& blocks) {
  for (int32_t b : blocks) {
    LS_CHECK(b >= 0 && b < num_blocks_ && in_use_[b]) << "releasing block " << b << " that is not in use";
    in_use_[b] = 0;
    free_.push_back(b);
  }
}

BlockTable::~BlockTable() {
  if (pool_) pool_->release(blocks_);
}

BlockTable::BlockTable(BlockTable&& o) noexcept : pool_(o.pool_), blocks_(std::move(o.blocks_)) {
  o.pool_ = nullptr;
  o.blocks_.clear();
}

Status BlockTable::reserve(int64_t num_tokens) {
  const int32_t need = pool_->blocks_for_tokens(num_tokens) - static_cast<int32_t>(blocks_.size());
  if (need <= 0) return Status::ok();
  LS_ASSIGN_OR_RETURN(auto more, pool_->allocate(need));
  blocks_.insert(blocks_.end(), more.begin(), more.end());
  return Status::ok();
}

int32_t BlockTable::slot_of(int64_t pos) const {
  const int64_t index = pos / pool_->block_size();
  LS_CHECK(index < static_cast<int64_t>(blocks_.size())) << "position " << pos << " beyond reserved blocks";
  return blocks_[index] * pool_->block_size() + static_cast<int32_t>(pos % pool_->block_size());
}

}  // namespace ls
