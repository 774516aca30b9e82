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

 private:
  struct Workspace;
  Status ensure_workspace(int64_t num_tokens, int64_t num_logit_rows);
  void run_layer(int64_t l, const BatchMeta& meta, const KvCache& kv, const LoraTable* lora, bool first);

  ModelConfig config_;
  ModelWeights weights_;
  Backend* backend_;
  Buffer inv_freq_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace ls
