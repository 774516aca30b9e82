// decode_graphs.h: DecodeGraphs, decode steps replayed from recorded graphs (CUDA graphs on the cuda backend).
// One graph per batch-size bucket; a step is padded to its bucket (padding tokens write no KV and attend to
// nothing) and laid out with a fixed block-table width, so its index arrays land at the same device addresses
// the graph recorded, in a workspace reserved once. The host packs and stages the next step (double-buffered
// pinned staging, Backend::upload_batch) while the GPU still runs the current one. Steps with adapters, prefill
// chunks or more sequences than the largest bucket are not eligible and run through Transformer::forward.
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
};

class DecodeGraphs {
 public:
  // Fails with kUnsupported when the backend records no graphs.
  static Result<std::unique_ptr<DecodeGraphs>> create(Transformer& model, const KvCache& kv,
                                                      DecodeGraphOptions options = {});

  const std::vector<int32_t>& buckets() const { return options_.buckets; }
  // The smallest bucket holding num_seqs sequences (0 when none does).
  int32_t bucket_for(int64_t num_seqs) const;
  // Whether the batch can run from a graph: one token per sequence, no adapter, within the buckets and
  // max_context.
  bool eligible(const ForwardBatch& batch) const;

  // Records the graphs of the given buckets (all when empty) that are not recorded yet. Every bucket first
  // runs once eagerly, so backend scratch and GEMM plans exist before anything is recorded.
  Status capture(const std::vector<int32_t>& buckets = {});

  // One decode step through its bucket's graph (recorded on first use). Returns float32 logits
  // [bucket, vocab] in backend memory, row i for batch.seqs[i] (rows past the batch are padding), valid until
  // the next run; the GPU may still be computing them (copy_to_host or a later op waits).
  Result<Tensor> run(const ForwardBatch& batch);
  // run() in two halves, so a benchmark can time the replay alone: stage the step's arrays (returns its
  // bucket), then replay that bucket's graph.
  Result<int32_t> prepare(const ForwardBatch& batch);
  Tensor replay(int32_t bucket);

 private:
  struct Entry {
    std::unique_ptr<OpGraph> graph;
    BatchMeta device_meta;
    Tensor logits;
  };
  DecodeGraphs(Transformer& model, const KvCache& kv, DecodeGraphOptions options);
  // Lays the batch (possibly empty) out padded to `bucket` in host_ and uploads it.
  BatchMeta stage(const ForwardBatch& batch, int32_t bucket);

  Transformer* model_;
  const KvCache* kv_;
  DecodeGraphOptions options_;
  int32_t max_blocks_;
  ForwardWorkspace ws_;
  std::map<int32_t, Entry> graphs_;
  PackedBatch host_;
};

}  // namespace ls
