// model_runner.h: ModelRunner, the one place a step runs: it packs the scheduled sequences (pack_batch, padded
// to a graph bucket when the step replays a decode graph), uploads, runs the forward pass eagerly or by graph
// replay, applies penalties, samples on the device (Backend::sample), computes the log-probabilities asked
// for, and hands each sequence its token. It owns the KV cache memory (sized once, by plan_kv_pool) and the
// decode graphs; which blocks a sequence uses is the scheduler's business (kv/block_pool.h).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "backend/sampling_params.h"
#include "model/decode_graphs.h"
#include "model/forward_batch.h"
#include "model/transformer.h"

namespace ls {

// The distinct tokens of a request with their output counts (0: in the prompt only), for penalties.
using TokenHistory = std::vector<std::pair<int32_t, int32_t>>;

struct RunnerSeq {
  SequenceStep step;                  // tokens to compute, cached count, blocks, adapter slot, logits wanted
  bool sample = false;                // draw the next token from the last row (the step ends the prompt or
                                      //  is a decode step)
  SamplingParams sampling;            // seed and step set by the caller
  PenaltyParams penalties;
  const TokenHistory* history = nullptr;  // when penalties are active
  int32_t logprobs = -1;              // -1: none; n >= 0: the sampled token's logprob and n alternatives
  // With step.logits == kAll: the token each row predicts (the next prompt token; -1: none, e.g. the row
  // that is sampled) and how many alternatives to return for it.
  std::vector<int32_t> prompt_targets;
  int32_t prompt_logprobs = -1;
};

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;
};

struct RunnerResult {
  TokenLogprob sampled;               // token -1 when not sampled
  std::vector<TokenLogprob> prompt;   // one per row with a prompt target, in row order
};

struct RunnerOptions {
  bool graphs = true;                 // replay decode steps from graphs where the backend records them
  int32_t max_graph_batch = 256;      // largest decode batch recorded
  int32_t max_context = 4096;         // longest context a graph step may have (the engine's max_model_len)
};

struct KvPoolPlan {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  int64_t bytes = 0;
};

// Sizes the KV pool once: `bytes` if positive, else on a GPU `gpu_memory_utilization` of device memory minus
// what is in use (weights, adapter slots) and a reserve for activations, else on the CPU 25% of RAM up to
// 4 GiB. Fails when not even one block fits.
Result<KvPoolPlan> plan_kv_pool(const ModelConfig& config, Backend& backend, int32_t block_size, int64_t bytes,
                                double gpu_memory_utilization, int64_t activation_reserve);

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> create(Transformer& model, const KvPoolPlan& kv,
                                                     const RunnerOptions& options);
  const KvCache& kv() const { return kv_; }
  Transformer& model() const { return *model_; }
  bool uses_graphs() const { return graphs_ != nullptr; }
  // Records every graph bucket up front (a server does this at start-up; otherwise on first use).
  Status capture_graphs();

  // Runs one step over `seqs` (non-empty): launch() then collect(). `lora` may be null when no sequence has
  // an adapter slot.
  Result<std::vector<RunnerResult>> step(std::vector<RunnerSeq>& seqs, const LoraTable* lora);
  // The step in two halves, so the host can do other work while the device computes: launch() queues the
  // forward pass and sampling (on an asynchronous backend it returns before they finish); collect() waits
  // and returns each sequence's result. At most one step is in flight.
  Status launch(std::vector<RunnerSeq>& seqs, const LoraTable* lora);
  Result<std::vector<RunnerResult>> collect();
  bool in_flight() const { return in_flight_; }
  // Whether the step in flight has finished on the device, so collect() will not wait for it; never waits
  // (always true on a synchronous backend).
  bool step_done() const;

 private:
  ModelRunner(Transformer& model, KvCache kv) : model_(&model), kv_(std::move(kv)) {}
  Status reserve(int64_t rows, int32_t top_n);
  void sample(Tensor logits, const std::vector<RunnerSeq>& seqs, const PackedBatch& packed, bool padded);
  Status prompt_logprobs(Tensor logits, const std::vector<RunnerSeq>& seqs, const PackedBatch& packed,
                         int32_t top_n);

  // The step in flight: what collect() needs to unpack its outputs.
  bool in_flight_ = false;
  uint64_t done_fence_ = 0;             // Backend::ops_fence after its last op
  int64_t rows_ = 0;
  int32_t top_n_ = 0;
  bool any_logprobs_ = false;
  std::vector<int32_t> sampled_row_;    // per sequence (-1: none)
  std::vector<int32_t> seq_logprobs_;   // per sequence: alternatives asked for (-1: none)
  std::vector<RunnerResult> results_;   // prompt log-probabilities, filled at launch

  Transformer* model_;
  KvCache kv_;
  std::unique_ptr<DecodeGraphs> graphs_;
  // Device outputs of the sampling ops, grown on demand: [rows], [rows], [rows * top_n] x 2.
  Buffer tokens_, logprob_, top_ids_, top_logprobs_, targets_;
  int64_t row_capacity_ = 0;
  int32_t top_capacity_ = 0;
  // Host staging of the per-row parameters.
  std::vector<SamplingParams> params_;
  std::vector<PenaltyParams> penalties_;
  std::vector<int32_t> count_start_, count_token_, count_value_;
};

}  // namespace ls
