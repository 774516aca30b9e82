// single_sequence.cpp: one-sequence prefill over a private KV cache.
#include "model/single_sequence.h"

#include <algorithm>

namespace ls {
namespace {

Result<KvCache> cache_for(Transformer& model, int64_t num_tokens, const SequenceOptions& o,
                          std::vector<int32_t>* block_table) {
  const int32_t blocks = static_cast<int32_t>((num_tokens + o.block_size - 1) / o.block_size);
  block_table->resize(static_cast<size_t>(blocks));
  for (int32_t b = 0; b < blocks; ++b) (*block_table)[b] = b;
  return KvCache::create(model.backend(), model.config(), std::max(blocks, 1), o.block_size);
}

}  // namespace

Result<std::vector<std::vector<float>>> sequence_logits(Transformer& model, const std::vector<int32_t>& tokens,
                                                        const SequenceOptions& o) {
  if (tokens.empty()) return invalid_argument("no tokens");
  SequenceStep step;
  LS_ASSIGN_OR_RETURN(KvCache kv, cache_for(model, static_cast<int64_t>(tokens.size()), o, &step.block_table));
  step.tokens = tokens;
  step.lora_slot = o.lora_slot;
  step.logits = LogitsWanted::kAll;
  ForwardBatch batch;
  batch.seqs.push_back(std::move(step));
  LS_ASSIGN_OR_RETURN(std::vector<float> flat, model.forward(batch, kv, o.lora));
  const auto vocab = static_cast<size_t>(model.config().vocab_size);
  std::vector<std::vector<float>> rows(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) rows[i].assign(flat.begin() + i * vocab, flat.begin() + (i + 1) * vocab);
  return rows;
}

}  // namespace ls
