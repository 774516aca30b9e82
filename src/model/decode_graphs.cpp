// decode_graphs.cpp: padding decode steps to graph buckets, recording and replaying them.
#include "model/decode_graphs.h"

#include <algorithm>

namespace ls {
namespace {

std::vector<int32_t> default_buckets() {
  std::vector<int32_t> b = {1, 2, 4, 8, 16};
  for (int32_t n = 24; n <= 256; n += 8) b.push_back(n);
  return b;
}

bool same_addresses(const BatchMeta& a, const BatchMeta& b) {
  return a.token_ids == b.token_ids && a.positions == b.positions && a.kv_slots == b.kv_slots &&
         a.query_start == b.query_start && a.context_lens == b.context_lens && a.block_tables == b.block_tables &&
         a.logit_rows == b.logit_rows && a.lora_seg_start == b.lora_seg_start && a.lora_seg_slot == b.lora_seg_slot &&
         a.token_lora_slot == b.token_lora_slot;
}

// The resident adapters as a LoRA graph records them: every module counts as adapted (the graph must hold the
// LoRA ops of all seven, whatever the slots hold when it is captured).
class AnyAdapterTable final : public LoraTable {
 public:
  explicit AnyAdapterTable(const LoraTable* t) : t_(t) {}
  int32_t num_slots() const override { return t_->num_slots(); }
  bool occupied(int32_t slot) const override { return t_->occupied(slot); }
  LoraModuleWeights module(int64_t layer, LoraModule m) const override {
    LoraModuleWeights w = t_->module(layer, m);
    w.max_rank = kLoraMaxRank;
    return w;
  }

 private:
  const LoraTable* t_;
};

}  // namespace

Result<std::unique_ptr<DecodeGraphs>> DecodeGraphs::create(Transformer& model, const KvCache& kv,
                                                           DecodeGraphOptions options) {
  if (options.buckets.empty()) options.buckets = default_buckets();
  std::sort(options.buckets.begin(), options.buckets.end());
  if (options.buckets.front() <= 0) return invalid_argument("decode graph buckets must be positive");
  if (options.max_context <= 0) return invalid_argument("decode graphs need a positive max_context");
  if (!model.backend().supports_graphs()) return unsupported(model.backend().name() + " backend records no graphs");
  std::unique_ptr<DecodeGraphs> g(new DecodeGraphs(model, kv, std::move(options)));
  const int32_t largest = g->options_.buckets.back();
  LS_RETURN_IF_ERROR(model.reserve_workspace(g->ws_, largest, largest));
  return g;
}

DecodeGraphs::DecodeGraphs(Transformer& model, const KvCache& kv, DecodeGraphOptions options)
    : model_(&model), kv_(&kv), options_(std::move(options)),
      max_blocks_((options_.max_context + kv.block_size() - 1) / kv.block_size()) {}

int32_t DecodeGraphs::bucket_for(int64_t num_seqs) const {
  for (int32_t b : options_.buckets)
    if (b >= num_seqs) return b;
  return 0;
}

bool DecodeGraphs::eligible(const ForwardBatch& batch) const {
  if (batch.seqs.empty() || bucket_for(static_cast<int64_t>(batch.seqs.size())) == 0) return false;
  const int32_t bs = kv_->block_size();
  for (const SequenceStep& s : batch.seqs) {
    if (s.tokens.size() != 1 || s.num_cached < 0) return false;
    if (s.lora_slot != -1 && !(options_.lora && s.lora_slot >= 0 && s.lora_slot < options_.lora->num_slots() &&
                               options_.lora->occupied(s.lora_slot)))
      return false;
    if (s.num_cached + 1 > options_.max_context) return false;
    if (static_cast<int64_t>(s.block_table.size()) * bs < s.num_cached + 1) return false;
  }
  return true;
}

BatchMeta DecodeGraphs::stage(const ForwardBatch& batch, int32_t bucket, bool with_lora) {
  const int32_t bs = kv_->block_size(), n = static_cast<int32_t>(batch.seqs.size());
  PackedBatch& p = host_;
  p.token_ids.assign(bucket, 0);
  p.positions.assign(bucket, 0);
  p.kv_slots.assign(bucket, -1);  // padding writes no KV
  p.context_lens.assign(bucket, 0);  // and attends to nothing
  p.block_tables.assign(static_cast<size_t>(bucket) * max_blocks_, 0);
  p.query_start.resize(bucket + 1);
  p.logit_rows.resize(bucket);
  p.lora_seg_start.resize(bucket + 1);
  p.lora_seg_slot.assign(bucket, -1);
  p.token_lora_slot.assign(bucket, -1);
  for (int32_t i = 0; i <= bucket; ++i) p.query_start[i] = i;
  for (int32_t i = 0; i < bucket; ++i) p.logit_rows[i] = i;
  for (int32_t i = 0; i < n; ++i) {
    const SequenceStep& s = batch.seqs[i];
    const int32_t pos = s.num_cached;
    p.token_ids[i] = s.tokens[0];
    p.positions[i] = pos;
    p.kv_slots[i] = s.block_table[pos / bs] * bs + pos % bs;
    p.context_lens[i] = pos + 1;
    const size_t blocks = std::min<size_t>(s.block_table.size(), static_cast<size_t>(max_blocks_));
    std::copy_n(s.block_table.begin(), blocks, p.block_tables.begin() + static_cast<size_t>(i) * max_blocks_);
    p.token_lora_slot[i] = s.lora_slot;
  }
  // LoRA segments: the runs of equal slots (padding rows: one run of -1), then empty segments up to `bucket`,
  // so the count the graph recorded never changes.
  int32_t segments = 0;
  for (int32_t t = 0; t < bucket; ++t) {
    if (t > 0 && p.token_lora_slot[t] == p.token_lora_slot[t - 1]) continue;
    p.lora_seg_start[segments] = t;
    p.lora_seg_slot[segments++] = p.token_lora_slot[t];
  }
  for (int32_t g = segments; g <= bucket; ++g) p.lora_seg_start[g] = bucket;
  BatchMeta& m = p.meta;
  m = BatchMeta{};
  m.num_tokens = m.num_seqs = m.num_logit_rows = m.num_lora_segments = bucket;
  m.token_ids = p.token_ids.data();
  m.positions = p.positions.data();
  m.kv_slots = p.kv_slots.data();
  m.query_start = p.query_start.data();
  m.context_lens = p.context_lens.data();
  m.block_tables = p.block_tables.data();
  m.max_blocks_per_seq = max_blocks_;
  m.max_query_len = 1;
  m.max_context_len = max_blocks_ * bs;  // the capacity: fixes the attention grid for every replay
  m.logit_rows = p.logit_rows.data();
  m.lora_seg_start = p.lora_seg_start.data();
  m.lora_seg_slot = p.lora_seg_slot.data();
  m.token_lora_slot = p.token_lora_slot.data();
  m.has_lora = with_lora;
  return model_->backend().upload_batch(m);
}

Status DecodeGraphs::capture(const std::vector<int32_t>& wanted, bool with_lora) {
  if (with_lora && !options_.lora) return invalid_argument("decode graphs with LoRA need a LoraTable in the options");
  std::vector<int32_t> todo;
  for (int32_t b : wanted.empty() ? options_.buckets : wanted) {
    if (std::find(options_.buckets.begin(), options_.buckets.end(), b) == options_.buckets.end())
      return invalid_argument("no decode graph bucket of size " + std::to_string(b));
    if (!graphs_.count({b, with_lora})) todo.push_back(b);
  }
  Backend& backend = model_->backend();
  const ForwardBatch empty;
  const AnyAdapterTable any(options_.lora);
  const LoraTable* lora = with_lora ? &any : nullptr;
  // Warm-up first, all of them: scratch buffers grow and GEMM plans are made before any address is recorded.
  for (int32_t b : todo) model_->run_uploaded(stage(empty, b, with_lora), *kv_, lora, ws_);
  backend.synchronize();
  for (int32_t b : todo) {
    Entry e;
    e.device_meta = stage(empty, b, with_lora);
    LS_RETURN_IF_ERROR(backend.begin_capture());
    e.logits = model_->run_uploaded(e.device_meta, *kv_, lora, ws_);
    LS_ASSIGN_OR_RETURN(e.graph, backend.end_capture());
    graphs_.emplace(GraphKey{b, with_lora}, std::move(e));
  }
  return Status::ok();
}

Result<Tensor> DecodeGraphs::run(const ForwardBatch& batch) {
  LS_ASSIGN_OR_RETURN(const GraphKey key, prepare(batch));
  return replay(key);
}

Result<DecodeGraphs::GraphKey> DecodeGraphs::prepare(const ForwardBatch& batch) {
  if (!eligible(batch)) return invalid_argument("batch is not a graph-eligible decode step");
  const int64_t vocab = model_->config().vocab_size;
  const int32_t n_blocks = kv_->num_blocks();
  bool with_lora = false;
  for (const SequenceStep& s : batch.seqs) {
    if (s.tokens[0] < 0 || s.tokens[0] >= vocab) return invalid_argument("token id outside the vocabulary");
    for (int32_t b : s.block_table)
      if (b < 0 || b >= n_blocks) return invalid_argument("block id " + std::to_string(b) + " out of range");
    with_lora |= s.lora_slot >= 0;
  }
  const GraphKey key{bucket_for(static_cast<int64_t>(batch.seqs.size())), with_lora};
  if (!graphs_.count(key)) LS_RETURN_IF_ERROR(capture({key.bucket}, with_lora));
  const BatchMeta meta = stage(batch, key.bucket, with_lora);
  LS_CHECK(same_addresses(meta, graphs_.at(key).device_meta)) << "decode graph: batch arrays moved since capture";
  return key;
}

Tensor DecodeGraphs::replay(GraphKey key) {
  Entry& e = graphs_.at(key);
  e.graph->replay();
  return e.logits;
}

}  // namespace ls
