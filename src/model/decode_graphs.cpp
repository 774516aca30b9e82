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

bool DecodeGraphs::eligible(const ForwardBatch& batch, const LoraTable* lora) const {
  if (batch.seqs.empty() || bucket_for(static_cast<int64_t>(batch.seqs.size())) == 0) return false;
  const int32_t bs = kv_->block_size();
  for (const SequenceStep& s : batch.seqs) {
    if (s.tokens.size() != 1 || s.num_cached < 0) return false;
    if (s.lora_slot != -1 && !(lora && (!lora_ || lora == lora_) && s.lora_slot >= 0 &&
                               s.lora_slot < lora->num_slots() && lora->occupied(s.lora_slot)))
      return false;
    if (s.num_cached + 1 > options_.max_context) return false;
    if (static_cast<int64_t>(s.block_table.size()) * bs < s.num_cached + 1) return false;
  }
  return true;
}

PackLayout DecodeGraphs::layout_for(int64_t num_seqs) const {
  PackLayout layout;
  layout.pad_to_seqs = bucket_for(num_seqs);
  layout.block_table_width = max_blocks_;
  layout.max_context_len = max_blocks_ * kv_->block_size();  // the capacity: fixes the attention grid
  return layout;
}

Result<BatchMeta> DecodeGraphs::upload_empty(GraphKey key) {
  const ModelConfig& c = model_->config();
  PackLayout layout = layout_for(key.bucket);
  LS_ASSIGN_OR_RETURN(empty_, pack_batch(ForwardBatch{}, kv_->block_size(), kv_->num_blocks(), c.vocab_size, 0, layout));
  empty_.meta.has_lora = key.with_lora;
  empty_.meta.lora_shared = key.shared;
  return model_->backend().upload_batch(empty_.meta);
}

Status DecodeGraphs::capture(const std::vector<int32_t>& wanted, const LoraTable* lora, bool shared) {
  if (lora && lora_ && lora != lora_) return invalid_argument("decode graphs already hold another adapter table");
  const bool with_lora = lora != nullptr;
  shared = shared && with_lora;
  std::vector<GraphKey> todo;
  for (int32_t b : wanted.empty() ? options_.buckets : wanted) {
    if (std::find(options_.buckets.begin(), options_.buckets.end(), b) == options_.buckets.end())
      return invalid_argument("no decode graph bucket of size " + std::to_string(b));
    const GraphKey key{b, with_lora, shared};
    if (!graphs_.count(key)) todo.push_back(key);
  }
  Backend& backend = model_->backend();
  const AnyAdapterTable any(lora);
  const LoraTable* recorded = with_lora ? &any : nullptr;
  // Warm-up first, all of them: scratch buffers grow and GEMM plans are made before any address is recorded.
  for (const GraphKey& key : todo) {
    LS_ASSIGN_OR_RETURN(const BatchMeta meta, upload_empty(key));
    model_->run_uploaded(meta, *kv_, recorded, ws_);
  }
  backend.synchronize();
  for (const GraphKey& key : todo) {
    Entry e;
    LS_ASSIGN_OR_RETURN(e.device_meta, upload_empty(key));
    LS_RETURN_IF_ERROR(backend.begin_capture());
    e.logits = model_->run_uploaded(e.device_meta, *kv_, recorded, ws_);
    LS_ASSIGN_OR_RETURN(e.graph, backend.end_capture());
    graphs_.emplace(key, std::move(e));
  }
  if (with_lora) lora_ = lora;
  return Status::ok();
}

Result<Tensor> DecodeGraphs::run(const PackedBatch& packed, const LoraTable* lora) {
  LS_ASSIGN_OR_RETURN(const GraphKey key, prepare(packed, lora));
  return replay(key);
}

Result<DecodeGraphs::GraphKey> DecodeGraphs::prepare(const PackedBatch& packed, const LoraTable* lora) {
  const int32_t bucket = packed.meta.num_seqs;
  if (std::find(options_.buckets.begin(), options_.buckets.end(), bucket) == options_.buckets.end() ||
      packed.meta.num_tokens != bucket || packed.meta.max_blocks_per_seq != max_blocks_)
    return invalid_argument("batch is not packed with a decode graph layout");
  const GraphKey key{bucket, packed.meta.has_lora,
                     packed.meta.has_lora && packed.meta.lora_shared && model_->backend().lora_shared_kernels()};
  if (key.with_lora && (!lora || (lora_ && lora != lora_)))
    return invalid_argument("a decode graph step with adapters needs the adapter table the graphs recorded");
  if (!graphs_.count(key)) LS_RETURN_IF_ERROR(capture({bucket}, key.with_lora ? lora : nullptr, key.shared));
  const BatchMeta meta = model_->backend().upload_batch(packed.meta);
  LS_CHECK(same_addresses(meta, graphs_.at(key).device_meta)) << "decode graph: batch arrays moved since capture";
  return key;
}

Tensor DecodeGraphs::replay(GraphKey key) {
  Entry& e = graphs_.at(key);
  e.graph->replay();
  return e.logits;
}

}  // namespace ls
