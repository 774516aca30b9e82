// transformer.h: Transformer, a loaded Llama-family base model (Llama, Mistral, Qwen2) and its forward pass,
// written once against the Backend ops. One call computes a whole ForwardBatch: every sequence's tokens, each
// with its own adapter slot or none, and returns the wanted logits rows.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"
#include "model/forward_batch.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"

namespace ls {

// The activation buffers of a forward pass, sized for a number of tokens and of logits rows. The Transformer
// grows its own on demand; a decode graph (model/decode_graphs.h) reserves one of its own once, so the
// addresses it recorded never move.
struct ForwardWorkspace {
  int64_t token_capacity = 0, row_capacity = 0;
  Buffer residual, normed, qkv, attn, proj, gate_up, act;  // [tokens, ...]
  Buffer final_rows, logits;                               // [logit rows, ...]
  Tensor t_residual, t_normed, t_qkv, t_attn, t_proj, t_gate_up, t_act, t_final_rows, t_logits;
};

struct LoadOptions {
  bool dummy_weights = false;  // --load-format dummy: seeded random weights with the config's shapes
  uint64_t dummy_seed = 0;
};

class Transformer {
 public:
  static Result<std::unique_ptr<Transformer>> load(const std::string& model_dir, Backend& backend,
                                                   const LoadOptions& options = {});
  Transformer(ModelConfig config, ModelWeights weights, Backend& backend, Buffer inv_freq);
  ~Transformer();

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  Backend& backend() const { return *backend_; }

  // Runs the batch and returns float32 logits, one row of vocab_size per wanted row (PackedBatch order),
  // in host memory. `lora` may be null when no sequence uses an adapter.
  Result<std::vector<float>> forward(const ForwardBatch& batch, KvCache& kv, const LoraTable* lora);

  // The same, leaving the logits in backend memory ([num_logit_rows, vocab] float32, valid until the next
  // call); `packed` receives the flattened batch.
  Result<Tensor> forward_device(const ForwardBatch& batch, KvCache& kv, const LoraTable* lora, PackedBatch* packed);

  // Grows `ws` to hold at least num_tokens tokens and num_logit_rows logits rows (never shrinks).
  Status reserve_workspace(ForwardWorkspace& ws, int64_t num_tokens, int64_t num_logit_rows) const;
  // Enqueues the ops of a forward pass over a batch already uploaded (Backend::upload_batch) into a workspace
  // that holds it; returns the logits [num_logit_rows, vocab] float32 in ws. Allocates nothing, so a backend
  // may record it as a graph.
  Tensor run_uploaded(const BatchMeta& meta, const KvCache& kv, const LoraTable* lora, ForwardWorkspace& ws) const;

 private:
  void run_layer(int64_t l, const BatchMeta& meta, const KvCache& kv, const LoraTable* lora,
                 ForwardWorkspace& ws) const;

  ModelConfig config_;
  ModelWeights weights_;
  Backend* backend_;
  Buffer inv_freq_;
  std::unique_ptr<ForwardWorkspace> ws_;
};

}  // namespace ls
