// lora_adapter.cpp: PEFT adapter loading: tensor-name parsing, target checks, shape checks and scale folding.
#include "lora/lora_adapter.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/file.h"
#include "io/safetensors.h"

namespace ls {

ProjectionShape projection_shape(const ModelConfig& m, LoraModule module) {
  switch (module) {
    case LoraModule::kQ: return {m.hidden_size, m.q_size()};
    case LoraModule::kK:
    case LoraModule::kV: return {m.hidden_size, m.kv_size()};
    case LoraModule::kO: return {m.q_size(), m.hidden_size};
    case LoraModule::kGate:
    case LoraModule::kUp: return {m.hidden_size, m.intermediate_size};
    case LoraModule::kDown: return {m.intermediate_size, m.hidden_size};
  }
  return {0, 0};
}

std::string module_key(int64_t layer, LoraModule module) {
  const bool attention = module <= LoraModule::kO;
  return "model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") + lora_module_name(module);
}

namespace {

struct TensorPair {
  const TensorView* a = nullptr;
  const TensorView* b = nullptr;
};
using PairKey = std::pair<int64_t, int>;  // (layer, module)

bool strip_prefix(std::string& s, std::string_view prefix) {
  if (s.compare(0, prefix.size(), prefix) != 0) return false;
  s.erase(0, prefix.size());
  return true;
}

bool strip_suffix(std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.erase(s.size() - suffix.size());
  return true;
}

Status classify_unknown_tensor(const std::string& name) {
  if (name.find("lora_embedding_") != std::string::npos)
    return unsupported("embedding LoRA (tensor \"" + name + "\") is not supported");
  if (name.find("lora_magnitude_vector") != std::string::npos)
    return unsupported("DoRA (tensor \"" + name + "\") is not supported");
  if (name.find("lm_head") != std::string::npos)
    return unsupported("LoRA on lm_head (tensor \"" + name + "\") is not supported");
  if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
    return unsupported("trained bias tensor \"" + name + "\" is not supported");
  return invalid_argument("unexpected tensor \"" + name + "\" in adapter_model.safetensors");
}

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" -> (3, kQ, is_a).
Status parse_tensor_name(const std::string& full, int64_t num_layers, PairKey* key, bool* is_a) {
  std::string s = full;
  strip_prefix(s, "base_model.model.");
  if (!strip_suffix(s, ".weight")) return classify_unknown_tensor(full);
  strip_suffix(s, ".default");
  if (strip_suffix(s, ".lora_A")) {
    *is_a = true;
  } else if (strip_suffix(s, ".lora_B")) {
    *is_a = false;
  } else {
    return classify_unknown_tensor(full);
  }
  if (!strip_prefix(s, "model.layers.")) return classify_unknown_tensor(full);
  const size_t dot = s.find('.');
  if (dot == 0 || dot == std::string::npos || dot > 6) return classify_unknown_tensor(full);
  for (size_t i = 0; i < dot; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return classify_unknown_tensor(full);
  const int64_t layer = std::stoll(s.substr(0, dot));
  if (layer >= num_layers)
    return invalid_argument("tensor \"" + full + "\" is for layer " + std::to_string(layer) + " but the base model has " +
                            std::to_string(num_layers) + " layers (adapter for another base model?)");
  for (int m = 0; m < kNumLoraModules; ++m) {
    if (module_key(layer, static_cast<LoraModule>(m)) == "model.layers." + s) {
      *key = {layer, m};
      return Status::ok();
    }
  }
  return invalid_argument("tensor \"" + full + "\" targets unknown module \"" + s.substr(dot + 1) + "\"");
}

// Every list entry of target_modules must name one of the base model's projections.
Status check_target_names(const PeftLoraConfig& c, const ModelConfig& model) {
  for (const std::string& name : c.target_modules.names) {
    bool found = false;
    for (int m = 0; m < kNumLoraModules && !found; ++m) {
      const std::string key = module_key(0, static_cast<LoraModule>(m));
      found = key == name || (key.size() > name.size() && key.compare(key.size() - name.size(), name.size(), name) == 0 &&
                              key[key.size() - name.size() - 1] == '.');
      // Entries with a layer index ("model.layers.5.self_attn.q_proj") are checked by key on any layer.
      for (int64_t l = 1; l < model.num_layers && !found; ++l) found = module_key(l, static_cast<LoraModule>(m)) == name;
    }
    if (found) continue;
    if (name == "embed_tokens" || name.find("embed_tokens") != std::string::npos)
      return unsupported("target_modules: embedding LoRA (\"" + name + "\") is not supported");
    if (name == "lm_head") return unsupported("target_modules: LoRA on lm_head is not supported");
    return invalid_argument("target_modules: \"" + name + "\" matches no module of this base model (supported: "
                            "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
  }
  return Status::ok();
}

Status check_shape(const TensorView& t, int64_t rows, int64_t cols, const std::string& what) {
  if (!is_float_dtype(t.dtype))
    return invalid_argument("tensor \"" + t.name + "\" has dtype " + std::string(dtype_name(t.dtype)) +
                            " (F32, F16 or BF16 expected)");
  if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
    return invalid_argument("tensor \"" + t.name + "\" has shape " + t.shape_string() + " but " + what + " needs [" +
                            std::to_string(rows) + ", " + std::to_string(cols) + "] (adapter for another base model?)");
  return Status::ok();
}

// Validates one module's A/B pair and stores A and the scaled B.
Status load_module(const PeftLoraConfig& config, const ModelConfig& model, const PairKey& key, const TensorPair& pair,
                   LoraModuleTensors* out) {
  const auto module = static_cast<LoraModule>(key.second);
  const std::string mkey = module_key(key.first, module);
  if (!pair.a || !pair.b) return invalid_argument("module " + mkey + " has only one of lora_A and lora_B");
  LS_ASSIGN_OR_RETURN(bool targeted, is_lora_target(config, mkey));
  if (!targeted) return invalid_argument("adapter_model.safetensors has weights for " + mkey +
                                         ", which adapter_config.json target_modules does not select");
  const ProjectionShape shape = projection_shape(model, module);
  const int64_t rank = pair.a->shape.empty() ? 0 : pair.a->shape[0];
  if (rank <= 0) return invalid_argument("tensor \"" + pair.a->name + "\" has rank 0");
  LS_RETURN_IF_ERROR(check_shape(*pair.a, rank, shape.in_dim, mkey + " lora_A"));
  LS_RETURN_IF_ERROR(check_shape(*pair.b, shape.out_dim, rank, mkey + " lora_B"));
  LS_ASSIGN_OR_RETURN(ModuleLoraParams params, module_lora_params(config, mkey));
  if (params.rank != rank)
    return invalid_argument("adapter_config.json gives " + mkey + " rank " + std::to_string(params.rank) +
                            " (r / rank_pattern) but its tensors have rank " + std::to_string(rank));
  out->rank = rank;
  out->a = pair.a->to_f32();
  out->b = pair.b->to_f32();
  const float scale = static_cast<float>(params.scale);
  for (float& v : out->b) v *= scale;
  return Status::ok();
}

}  // namespace

Result<PeftLoraConfig> parse_adapter_config(std::string_view text, const ModelConfig& model) {
  LS_ASSIGN_OR_RETURN(PeftLoraConfig config, parse_peft_config(text));
  LS_RETURN_IF_ERROR(check_target_names(config, model));
  return config;
}

Result<LoraAdapter> adapter_from_weights(PeftLoraConfig config, const SafetensorsFile& file, const ModelConfig& model) {
  LoraAdapter adapter;
  adapter.config = std::move(config);
  std::map<PairKey, TensorPair> pairs;
  for (const auto& [name, view] : file.tensors()) {
    PairKey key;
    bool is_a = false;
    LS_RETURN_IF_ERROR(parse_tensor_name(name, model.num_layers, &key, &is_a));
    (is_a ? pairs[key].a : pairs[key].b) = &view;
  }
  adapter.layers.resize(static_cast<size_t>(model.num_layers));
  for (const auto& [key, pair] : pairs) {
    LoraModuleTensors& out = adapter.layers[key.first][key.second];
    LS_RETURN_IF_ERROR(load_module(adapter.config, model, key, pair, &out));
    adapter.max_rank = std::max(adapter.max_rank, out.rank);
    adapter.num_parameters += out.a.size() + out.b.size();
  }
  // Every module the config selects must have its weights: a silently missing module would serve a different model.
  for (int64_t l = 0; l < model.num_layers; ++l) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const std::string mkey = module_key(l, static_cast<LoraModule>(m));
      LS_ASSIGN_OR_RETURN(bool targeted, is_lora_target(adapter.config, mkey));
      if (targeted && adapter.layers[l][m].rank == 0)
        return invalid_argument("adapter_config.json targets " + mkey + " but it has no lora_A/lora_B");
    }
  }
  if (pairs.empty()) return invalid_argument("no LoRA tensors");
  return adapter;
}

Result<LoraAdapter> load_lora_adapter(const std::string& dir, const ModelConfig& model, const std::string* text) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return not_found("adapter directory not found: " + dir);
  std::string read_text;
  if (!text) {
    LS_ASSIGN_OR_RETURN(read_text, read_file(dir + "/adapter_config.json", size_t{1} << 20));
    text = &read_text;
  }
  auto config = parse_adapter_config(*text, model);
  if (!config.is_ok()) return config.status().with_context(dir + "/adapter_config.json");
  const std::string weights_path = dir + "/adapter_model.safetensors";
  if (!fs::exists(weights_path, ec)) {
    if (fs::exists(dir + "/adapter_model.bin", ec))
      return unsupported(dir + ": adapter_model.bin (PyTorch pickle) is not supported; save it as safetensors");
    return not_found("missing " + weights_path);
  }
  LS_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(weights_path));
  auto adapter = adapter_from_weights(std::move(config).value(), file, model);
  if (!adapter.is_ok()) return adapter.status().with_context(weights_path);
  adapter->path = dir;
  return adapter;
}

}  // namespace ls
