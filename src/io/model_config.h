// model_config.h: ModelConfig, the transformer shape and options read from a Hugging Face config.json
// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM). Anything the engine does not implement is an
// error naming the field, never a guess.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ls {

enum class ModelArch { kLlama, kMistral, kQwen2 };
const char* model_arch_name(ModelArch arch);

enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                       // linear and llama3
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  ModelArch arch = ModelArch::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;    // Qwen2 always; Llama with attention_bias
  bool o_bias = false;      // Llama with attention_bias
  bool mlp_bias = false;    // Llama with mlp_bias
  int64_t sliding_window = 0;  // 0: full attention (Mistral sets it)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  // The RoPE inverse frequencies (head_dim / 2 of them) after any scaling, as transformers computes them.
  std::vector<float> rope_inv_freq() const;
};

Result<ModelConfig> parse_model_config(const Json& config);
// Reads DIR/config.json; errors carry the path.
Result<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace ls
