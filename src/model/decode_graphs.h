// decode_graphs.h: DecodeGraphs, decode steps replayed from recorded graphs (CUDA graphs on the cuda backend).
// One graph per batch-size bucket; a step is packed by pack_batch padded to its bucket with a fixed block-table
// width (layout_for), so its index arrays land at the same device addresses the graph recorded, in a workspace
// reserved once. The host packs and stages the next step (double-buffered pinned staging,
// Backend::upload_batch) while the GPU still runs the current one. Steps whose sequences use adapters replay a
// second graph per bucket that holds the LoRA ops of all seven modules: which slot (so which adapter and rank)
// each row uses is read on the device from the step's segment arrays, so loading, evicting or mixing adapters
// never needs a new capture; base-only steps keep the graph without LoRA ops. Steps whose sequences all use one
// adapter (BatchMeta::lora_shared) replay a third graph per bucket where the backend has kernels of its own for
// them (Backend::lora_shared_kernels), which read that adapter's weights once for many rows; the adapter itself is
// still read on the device. The LoraTable of the first LoRA
// capture is the one the graphs recorded (its tables never move: lora/LoraSlots); steps with another table,
// prefill chunks, slots without a ready adapter or more sequences than the largest bucket are not eligible and
// run through Transformer::forward_device.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "model/transformer.h"

namespace ls {

struct DecodeGraphOptions {
  std::vector<int32_t> buckets;  // ascending batch sizes; empty: 1, 2, 4, 8, 16, 24, 32, 40, ..., 256
  int32_t max_context = 4096;    // the longest context (tokens, this step's token included) a step may have
};

class DecodeGraphs {
 public:
  // Fails with kUnsupported when the backend records no graphs.
  static Result<std::unique_ptr<DecodeGraphs>> create(Transformer& model, const KvCache& kv,
                                                      DecodeGraphOptions options = {});

  const std::vector<int32_t>& buckets() const { return options_.buckets; }
  // The smallest bucket holding num_seqs sequences (0 when none does).
  int32_t bucket_for(int64_t num_seqs) const;
  // Whether the batch can run from a graph: one token per sequence, within the buckets and max_context, and
  // adapters only from `lora` (the table the LoRA graphs recorded, if any), in occupied slots.
  bool eligible(const ForwardBatch& batch, const LoraTable* lora = nullptr) const;
  // The layout (model/forward_batch.h) a step of num_seqs sequences is packed with to run from a graph.
  PackLayout layout_for(int64_t num_seqs) const;

  // Records the graphs of the given buckets (all when empty) that are not recorded yet: base-only, or with the
  // LoRA ops of `lora`'s tables (with `shared`: the graphs for steps whose sequences share one adapter). Every
  // bucket first runs once eagerly, so backend scratch and GEMM plans exist before anything is recorded.
  Status capture(const std::vector<int32_t>& buckets = {}, const LoraTable* lora = nullptr, bool shared = false);

  // One decode step, packed with layout_for(), through its bucket's graph (recorded on first use): uploads
  // the arrays and replays. Returns float32 logits [bucket, vocab] in backend memory, row i for sequence i
  // (rows past the batch are padding), valid until the next run; the GPU may still be computing them.
  // A step with adapters (packed.meta.has_lora) replays the bucket's LoRA graph, recorded with `lora`.
  Result<Tensor> run(const PackedBatch& packed, const LoraTable* lora = nullptr);
  // run() in two halves, so a benchmark can time the replay alone: upload (returns the graph), then replay.
  struct GraphKey {
    int32_t bucket;
    bool with_lora;
    bool shared;  // with_lora, for steps whose sequences share one adapter
    bool operator<(const GraphKey& o) const {
      return std::tie(bucket, with_lora, shared) < std::tie(o.bucket, o.with_lora, o.shared);
    }
  };
  Result<GraphKey> prepare(const PackedBatch& packed, const LoraTable* lora = nullptr);
  Tensor replay(GraphKey key);

 private:
  struct Entry {
    std::unique_ptr<OpGraph> graph;
    BatchMeta device_meta;
    Tensor logits;
  };
  DecodeGraphs(Transformer& model, const KvCache& kv, DecodeGraphOptions options);
  // The all-padding step of a graph's bucket, uploaded (capture and warm-up run it), flagged as the key says: with
  // adapters (so the forward pass enqueues the LoRA ops), and as one whose sequences share an adapter.
  Result<BatchMeta> upload_empty(GraphKey key);

  Transformer* model_;
  const KvCache* kv_;
  DecodeGraphOptions options_;
  int32_t max_blocks_;
  ForwardWorkspace ws_;
  std::map<GraphKey, Entry> graphs_;
  const LoraTable* lora_ = nullptr;  // the table the LoRA graphs recorded
  PackedBatch empty_;  // keeps the host arrays of upload_empty alive until the upload is queued
};

}  // namespace ls
