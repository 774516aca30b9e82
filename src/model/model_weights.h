// model_weights.h: ModelWeights, the base model's tensors in backend memory in compute dtype, laid out for
// the forward pass: q/k/v fused into one [q + 2 kv, hidden] matrix and gate/up into one [2 I, hidden] matrix.
// Loaded from safetensors (every tensor's name, dtype and shape checked) or filled with seeded random values
// (`dummy`, for benchmarks of real shapes without real weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/model_config.h"

namespace ls {

struct LayerWeights {
  Tensor input_norm, post_attention_norm;  // [1, hidden]
  Tensor qkv, qkv_bias;                    // [q + 2 kv, hidden], [1, q + 2 kv] (bias data null when absent)
  Tensor o, o_bias;                        // [hidden, q]
  Tensor gate_up, gate_up_bias;            // [2 I, hidden]
  Tensor down, down_bias;                  // [hidden, I]
};

struct ModelWeights {
  Tensor embed;   // [vocab, hidden]
  Tensor final_norm;
  Tensor lm_head; // [vocab, hidden]; the embedding when tied
  std::vector<LayerWeights> layers;
  std::vector<Buffer> memory;
  size_t num_bytes = 0;
};

Result<ModelWeights> load_model_weights(const std::string& model_dir, const ModelConfig& config, Backend& backend);
// Random weights with the config's shapes; the same seed gives the same values on every backend.
Result<ModelWeights> dummy_model_weights(const ModelConfig& config, Backend& backend, uint64_t seed);

}  // namespace ls
