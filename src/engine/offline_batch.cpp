// offline_batch.cpp: the offline greedy loop over a shared KV block pool.
#include "engine/offline_batch.h"

#include <algorithm>
#include <memory>

#include "kv/block_pool.h"
#include "model/single_sequence.h"

namespace ls {
namespace {

struct Running {
  const GenerationRequest* request;
  std::unique_ptr<BlockTable> blocks;
  std::vector<int32_t> pending;  // tokens not yet in the KV cache
  int32_t num_cached = 0;
  std::vector<int32_t> output;
  bool finished = false;
};

}  // namespace

Result<std::vector<std::vector<int32_t>>> generate_greedy_batch(Transformer& model,
                                                                const std::vector<GenerationRequest>& requests,
                                                                const LoraTable* lora,
                                                                const OfflineBatchOptions& options) {
  int64_t total_tokens = 0;
  for (const GenerationRequest& r : requests) {
    if (r.prompt.empty()) return invalid_argument("empty prompt");
    total_tokens += static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens;
  }
  const auto blocks = static_cast<int32_t>(total_tokens / options.block_size + static_cast<int64_t>(requests.size()) + 1);
  BlockPool pool(blocks, options.block_size);
  LS_ASSIGN_OR_RETURN(KvCache kv, KvCache::create(model.backend(), model.config(), blocks, options.block_size));
  std::vector<Running> running;
  for (const GenerationRequest& r : requests)
    running.push_back({&r, std::make_unique<BlockTable>(pool), r.prompt, 0, {}, r.max_new_tokens == 0});
  const int64_t vocab = model.config().vocab_size;

  for (;;) {
    // Take tokens from each unfinished sequence until the step's budget is used; a prompt longer than the
    // budget is prefilled over several steps (chunked prefill).
    ForwardBatch batch;
    std::vector<Running*> members;
    int32_t budget = options.max_batch_tokens;
    for (Running& r : running) {
      if (r.finished || r.pending.empty() || budget <= 0) continue;
      const int32_t n = std::min<int32_t>(budget, static_cast<int32_t>(r.pending.size()));
      LS_RETURN_IF_ERROR(r.blocks->reserve(r.num_cached + n));
      SequenceStep step;
      step.tokens.assign(r.pending.begin(), r.pending.begin() + n);
      step.num_cached = r.num_cached;
      step.block_table = r.blocks->blocks();
      step.lora_slot = r.request->lora_slot;
      step.logits = n == static_cast<int32_t>(r.pending.size()) ? LogitsWanted::kLast : LogitsWanted::kNone;
      batch.seqs.push_back(std::move(step));
      members.push_back(&r);
      budget -= n;
    }
    if (members.empty()) break;
    PackedBatch packed;
    LS_ASSIGN_OR_RETURN(Tensor logits, model.forward_device(batch, kv, lora, &packed));
    std::vector<float> host(static_cast<size_t>(logits.rows * vocab));
    model.backend().copy_to_host(host.data(), logits.data, host.size() * sizeof(float));
    for (size_t i = 0; i < members.size(); ++i) {
      Running& r = *members[i];
      const auto n = static_cast<int32_t>(batch.seqs[i].tokens.size());
      r.num_cached += n;
      r.pending.erase(r.pending.begin(), r.pending.begin() + n);
      if (packed.seq_logit_begin[i] == packed.seq_logit_begin[i + 1]) continue;  // mid-prefill chunk
      const int32_t next = argmax_index(&host[packed.seq_logit_begin[i] * vocab], vocab);
      r.output.push_back(next);
      const auto& stops = r.request->stop_ids;
      r.finished = static_cast<int32_t>(r.output.size()) >= r.request->max_new_tokens ||
                   std::find(stops.begin(), stops.end(), next) != stops.end();
      if (!r.finished) r.pending = {next};
    }
  }
  std::vector<std::vector<int32_t>> outputs;
  for (Running& r : running) outputs.push_back(std::move(r.output));
  return outputs;
}

}  // namespace ls
