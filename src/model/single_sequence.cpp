// single_sequence.cpp: one-sequence prefill and greedy decode over a private KV cache.
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

int32_t argmax_index(const float* values, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (values[i] > values[best]) best = i;
  return static_cast<int32_t>(best);
}

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

Result<std::vector<int32_t>> greedy_generate(Transformer& model, const std::vector<int32_t>& prompt,
                                             int32_t max_new_tokens, const std::vector<int64_t>& stop_ids,
                                             const SequenceOptions& o) {
  if (prompt.empty()) return invalid_argument("no prompt tokens");
  if (max_new_tokens < 0) return invalid_argument("max_new_tokens must be >= 0");
  SequenceStep step;
  LS_ASSIGN_OR_RETURN(KvCache kv, cache_for(model, static_cast<int64_t>(prompt.size()) + max_new_tokens, o,
                                            &step.block_table));
  step.tokens = prompt;
  step.lora_slot = o.lora_slot;
  std::vector<int32_t> out;
  const int64_t vocab = model.config().vocab_size;
  while (static_cast<int32_t>(out.size()) < max_new_tokens) {
    ForwardBatch batch;
    batch.seqs.push_back(step);
    LS_ASSIGN_OR_RETURN(std::vector<float> logits, model.forward(batch, kv, o.lora));
    const int32_t next = argmax_index(logits.data(), vocab);
    out.push_back(next);
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    step.num_cached += static_cast<int32_t>(step.tokens.size());
    step.tokens = {next};
  }
  return out;
}

}  // namespace ls
