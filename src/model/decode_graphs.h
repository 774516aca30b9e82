// decode_graphs.h: DecodeGraphs, decode steps replayed from recorded graphs (CUDA graphs on the cuda backend).
// One graph per batch-size bucket; a step is padded to its bucket (padding tokens write no KV and attend to
// nothing) and laid out with a fixed block-table width, so its index arrays land at the same device addresses
// the graph recorded, in a workspace reserved once. The host packs and stages the next step (double-buffered
// pinned staging, Backend::upload_batch) while the GPU still runs the current one. With a LoraTable in the
// options, steps whose sequences use adapters replay a second graph per bucket that holds the LoRA ops of all
// seven modules: which slot (and so which adapter and rank) each row uses is read on the device from the step's
// segment arrays, so loading, evicting or mixing adapters never needs a new capture; base-only steps keep the
// graph without LoRA ops. Prefill chunks, steps with more sequences than the largest bucket and slots that hold
// no ready adapter are not eligible and run through Transformer::forward.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "model/transformer.h"

namespace ls {

struct DecodeGraphOptions {
  std::vector<int32_t> buckets;  // ascending batch sizes; empty: 1, 2, 4, 8, 16, 24, 32, 40, ..., 256
  int32_t max_context = 4096;    // the longest context (tokens, this step's token included) a step may have
  const LoraTable* lora = nullptr;  // the resident adapters steps may use (null: base-only steps); must outlive
                                    // the graphs, and its tables never move (lora/LoraSlots)
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
  // adapters only from the options' LoraTable, in occupied slots.
  bool eligible(const ForwardBatch& batch) const;

  // Records the graphs of the given buckets (all when empty) that are not recorded yet, the base-only ones or
  // (with_lora) those with the LoRA ops. Every bucket first runs once eagerly, so backend scratch and GEMM plans
  // exist before anything is recorded.
  Status capture(const std::vector<int32_t>& buckets = {}, bool with_lora = false);

  // One decode step through its bucket's graph (recorded on first use). Returns float32 logits
  // [bucket, vocab] in backend memory, row i for batch.seqs[i] (rows past the batch are padding), valid until
  // the next run; the GPU may still be computing them (copy_to_host or a later op waits).
  Result<Tensor> run(const ForwardBatch& batch);
  // run() in two halves, so a benchmark can time the replay alone: stage the step's arrays (returns its
  // graph), then replay that graph.
  struct GraphKey {
    int32_t bucket;
    bool with_lora;
    bool operator<(const GraphKey& o) const { return bucket != o.bucket ? bucket < o.bucket : with_lora < o.with_lora; }
  };
  Result<GraphKey> prepare(const ForwardBatch& batch);
  Tensor replay(GraphKey key);

 private:
  struct Entry {
    std::unique_ptr<OpGraph> graph;
    BatchMeta device_meta;
    Tensor logits;
  };
  DecodeGraphs(Transformer& model, const KvCache& kv, DecodeGraphOptions options);
  // Lays the batch (possibly empty) out padded to `bucket` in host_ and uploads it.
  BatchMeta stage(const ForwardBatch& batch, int32_t bucket, bool with_lora);

  Transformer* model_;
  const KvCache* kv_;
  DecodeGraphOptions options_;
  int32_t max_blocks_;
  ForwardWorkspace ws_;
  std::map<GraphKey, Entry> graphs_;
  PackedBatch host_;
};

}  // namespace ls
