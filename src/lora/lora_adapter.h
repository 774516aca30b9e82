// lora_adapter.h: LoraAdapter, a PEFT LoRA adapter loaded into host memory in float32 and checked against a
// base model: per layer and projection an A [rank, in] and a B [out, rank] with the module's scale folded into
// B, so the kernels compute y += B (A x).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backend/lora_weights.h"
#include "core/status.h"
#include "io/model_config.h"
#include "lora/peft_config.h"

namespace ls {

struct LoraModuleTensors {
  int64_t rank = 0;       // 0: this module is not adapted
  std::vector<float> a;   // [rank, in_dim]
  std::vector<float> b;   // [out_dim, rank], scaled
};

struct LoraAdapter {
  std::string path;
  PeftLoraConfig config;
  std::vector<std::array<LoraModuleTensors, kNumLoraModules>> layers;  // [num_layers][module]
  int64_t max_rank = 0;
  size_t num_parameters = 0;
};

// Input and output features of a projection of the base model.
struct ProjectionShape {
  int64_t in_dim;
  int64_t out_dim;
};
ProjectionShape projection_shape(const ModelConfig& model, LoraModule module);
// "model.layers.3.self_attn.q_proj": the module key PEFT matches against.
std::string module_key(int64_t layer, LoraModule module);

class SafetensorsFile;

// The two halves of loading an adapter, also for callers (and the fuzzer) whose files are already in memory:
// adapter_config.json's text parsed and its target_modules checked against the model's projections; then the
// weights checked against that config and the model (every tensor name, dtype, shape and rank; every targeted
// module present) and converted, B scaled.
Result<PeftLoraConfig> parse_adapter_config(std::string_view text, const ModelConfig& model);
Result<LoraAdapter> adapter_from_weights(PeftLoraConfig config, const SafetensorsFile& weights, const ModelConfig& model);

// Loads DIR/adapter_config.json and DIR/adapter_model.safetensors and validates them against `model`.
// `config_text`, when given, is adapter_config.json's content already read by the caller.
Result<LoraAdapter> load_lora_adapter(const std::string& dir, const ModelConfig& model,
                                      const std::string* config_text = nullptr);

}  // namespace ls
