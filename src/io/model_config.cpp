// model_config.cpp: config.json parsing, including both the rope_theta/rope_scaling and the transformers-v5
// rope_parameters forms, and the Llama-3.1 frequency scaling.
#include "io/model_config.h"

#include <cmath>

namespace ls {

const char* model_arch_name(ModelArch arch) {
  switch (arch) {
    case ModelArch::kLlama: return "llama";
    case ModelArch::kMistral: return "mistral";
    case ModelArch::kQwen2: return "qwen2";
  }
  return "unknown";
}

namespace {

Result<ModelArch> parse_arch(const Json& config) {
  std::string arch_name;
  if (const Json* archs = find_field(config, "architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string())
      return invalid_argument("field \"architectures\" must be a non-empty list of strings");
    arch_name = (*archs)[0].get<std::string>();
  }
  LS_ASSIGN_OR_RETURN(std::string model_type, optional_string(config, "model_type", ""));
  if (arch_name == "LlamaForCausalLM" || (arch_name.empty() && model_type == "llama")) return ModelArch::kLlama;
  if (arch_name == "MistralForCausalLM" || (arch_name.empty() && model_type == "mistral")) return ModelArch::kMistral;
  if (arch_name == "Qwen2ForCausalLM" || (arch_name.empty() && model_type == "qwen2")) return ModelArch::kQwen2;
  if (arch_name.empty() && model_type.empty()) return invalid_argument("config has neither \"architectures\" nor \"model_type\"");
  return unsupported("architecture \"" + (arch_name.empty() ? model_type : arch_name) +
                     "\" is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
}

// rope_parameters (transformers v5) or rope_scaling (+ top-level rope_theta).
Result<RopeConfig> parse_rope(const Json& config) {
  RopeConfig rope;
  const Json* params = find_field(config, "rope_parameters");
  const Json* scaling = find_field(config, "rope_scaling");
  LS_ASSIGN_OR_RETURN(rope.theta, optional_number(config, "rope_theta", 10000.0));
  const Json* spec = params ? params : scaling;
  if (!spec) return rope;
  const char* field = params ? "rope_parameters" : "rope_scaling";
  if (!spec->is_object()) return invalid_argument(std::string("field \"") + field + "\" must be an object");
  if (params) {
    LS_ASSIGN_OR_RETURN(rope.theta, optional_number(*params, "rope_theta", rope.theta));
  }
  std::string type;
  LS_ASSIGN_OR_RETURN(type, optional_string(*spec, "rope_type", ""));
  if (type.empty()) {
    LS_ASSIGN_OR_RETURN(type, optional_string(*spec, "type", "default"));
  }
  if (type == "default") return rope;
  LS_ASSIGN_OR_RETURN(rope.factor, optional_number(*spec, "factor", 1.0));
  if (!(rope.factor > 0)) return invalid_argument(std::string(field) + ".factor must be positive");
  if (type == "linear") {
    rope.type = RopeType::kLinear;
    return rope;
  }
  if (type == "llama3") {
    rope.type = RopeType::kLlama3;
    LS_ASSIGN_OR_RETURN(rope.low_freq_factor, required_number(*spec, "low_freq_factor"));
    LS_ASSIGN_OR_RETURN(rope.high_freq_factor, required_number(*spec, "high_freq_factor"));
    LS_ASSIGN_OR_RETURN(rope.original_max_position_embeddings,
                        required_int(*spec, "original_max_position_embeddings"));
    if (!(rope.high_freq_factor > rope.low_freq_factor) || rope.original_max_position_embeddings <= 0)
      return invalid_argument(std::string(field) + ": llama3 needs high_freq_factor > low_freq_factor and "
                              "original_max_position_embeddings > 0");
    return rope;
  }
  return unsupported(std::string(field) + ": rope type \"" + type + "\" is not supported (default, linear, llama3)");
}

Result<std::vector<int64_t>> parse_token_ids(const Json& config, std::string_view key) {
  std::vector<int64_t> ids;
  const Json* v = find_field(config, key);
  if (!v) return ids;
  if (v->is_number_integer()) {
    ids.push_back(v->get<int64_t>());
    return ids;
  }
  if (!v->is_array()) return invalid_argument("field \"" + std::string(key) + "\" must be an integer or a list");
  for (const Json& id : *v) {
    if (!id.is_number_integer()) return invalid_argument("field \"" + std::string(key) + "\" must hold integers");
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

Status check_unsupported_features(const Json& config, ModelArch arch) {
  if (find_field(config, "quantization_config")) return unsupported("quantized checkpoints (quantization_config) are not supported");
  LS_ASSIGN_OR_RETURN(std::string act, optional_string(config, "hidden_act", "silu"));
  if (act != "silu") return unsupported("hidden_act \"" + act + "\" is not supported (silu only)");
  LS_ASSIGN_OR_RETURN(double partial, optional_number(config, "partial_rotary_factor", 1.0));
  if (partial != 1.0) return unsupported("partial_rotary_factor != 1 is not supported");
  LS_ASSIGN_OR_RETURN(int64_t tp, optional_int(config, "pretraining_tp", 1));
  if (tp != 1) return unsupported("pretraining_tp != 1 is not supported");
  if (arch == ModelArch::kQwen2) {
    LS_ASSIGN_OR_RETURN(bool sliding, optional_bool(config, "use_sliding_window", false));
    if (sliding) return unsupported("Qwen2 use_sliding_window=true is not supported");
  }
  return Status::ok();
}

Status check_shapes(const ModelConfig& c) {
  auto positive = [](int64_t v, const char* name) -> Status {
    if (v <= 0 || v > (1 << 24)) return invalid_argument(std::string("field \"") + name + "\" must be positive and sane");
    return Status::ok();
  };
  LS_RETURN_IF_ERROR(positive(c.vocab_size, "vocab_size"));
  LS_RETURN_IF_ERROR(positive(c.hidden_size, "hidden_size"));
  LS_RETURN_IF_ERROR(positive(c.intermediate_size, "intermediate_size"));
  LS_RETURN_IF_ERROR(positive(c.num_layers, "num_hidden_layers"));
  LS_RETURN_IF_ERROR(positive(c.num_heads, "num_attention_heads"));
  LS_RETURN_IF_ERROR(positive(c.num_kv_heads, "num_key_value_heads"));
  LS_RETURN_IF_ERROR(positive(c.head_dim, "head_dim"));
  if (c.num_heads % c.num_kv_heads != 0)
    return invalid_argument("num_attention_heads must be a multiple of num_key_value_heads");
  if (c.head_dim % 2 != 0) return invalid_argument("head_dim must be even for RoPE");
  if (!(c.rms_norm_eps > 0)) return invalid_argument("rms_norm_eps must be positive");
  return Status::ok();
}

}  // namespace

Result<ModelConfig> parse_model_config(const Json& config) {
  if (!config.is_object()) return invalid_argument("config is not a JSON object");
  ModelConfig c;
  LS_ASSIGN_OR_RETURN(c.arch, parse_arch(config));
  LS_RETURN_IF_ERROR(check_unsupported_features(config, c.arch));
  LS_ASSIGN_OR_RETURN(c.vocab_size, required_int(config, "vocab_size"));
  LS_ASSIGN_OR_RETURN(c.hidden_size, required_int(config, "hidden_size"));
  LS_ASSIGN_OR_RETURN(c.intermediate_size, required_int(config, "intermediate_size"));
  LS_ASSIGN_OR_RETURN(c.num_layers, required_int(config, "num_hidden_layers"));
  LS_ASSIGN_OR_RETURN(c.num_heads, required_int(config, "num_attention_heads"));
  LS_ASSIGN_OR_RETURN(c.num_kv_heads, optional_int(config, "num_key_value_heads", c.num_heads));
  const int64_t default_head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  LS_ASSIGN_OR_RETURN(c.head_dim, optional_int(config, "head_dim", default_head_dim));
  LS_ASSIGN_OR_RETURN(c.max_position_embeddings, optional_int(config, "max_position_embeddings", 2048));
  LS_ASSIGN_OR_RETURN(c.rms_norm_eps, optional_number(config, "rms_norm_eps", 1e-6));
  LS_ASSIGN_OR_RETURN(c.tie_word_embeddings, optional_bool(config, "tie_word_embeddings", false));
  LS_ASSIGN_OR_RETURN(c.rope, parse_rope(config));
  if (c.arch == ModelArch::kQwen2) {
    c.qkv_bias = true;  // Qwen2 hard-codes q/k/v bias regardless of config
  } else if (c.arch == ModelArch::kLlama) {
    LS_ASSIGN_OR_RETURN(bool attention_bias, optional_bool(config, "attention_bias", false));
    LS_ASSIGN_OR_RETURN(c.mlp_bias, optional_bool(config, "mlp_bias", false));
    c.qkv_bias = c.o_bias = attention_bias;
  } else {
    LS_ASSIGN_OR_RETURN(c.sliding_window, optional_int(config, "sliding_window", 0));
    if (c.sliding_window < 0) return invalid_argument("field \"sliding_window\" must be positive or null");
  }
  LS_ASSIGN_OR_RETURN(c.bos_token_id, optional_int(config, "bos_token_id", -1));
  LS_ASSIGN_OR_RETURN(c.eos_token_ids, parse_token_ids(config, "eos_token_id"));
  LS_RETURN_IF_ERROR(check_shapes(c));
  return c;
}

Result<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  auto json = read_json_file(path);
  if (!json.is_ok()) return json.status();
  auto config = parse_model_config(json.value());
  if (!config.is_ok()) return config.status().with_context(path);
  return config;
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv[i] = 1.0f / static_cast<float>(std::pow(rope.theta, static_cast<double>(exponent)));
  }
  if (rope.type == RopeType::kLinear) {
    for (float& f : inv) f = static_cast<float>(f / rope.factor);
  } else if (rope.type == RopeType::kLlama3) {
    const double low_wavelen = rope.original_max_position_embeddings / rope.low_freq_factor;
    const double high_wavelen = rope.original_max_position_embeddings / rope.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / rope.factor);
      } else if (wavelen >= high_wavelen) {  // medium band: interpolate
        const double smooth = (rope.original_max_position_embeddings / wavelen - rope.low_freq_factor) /
                              (rope.high_freq_factor - rope.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / rope.factor + smooth * f);
      }
    }
  }
  return inv;
}

}  // namespace ls
