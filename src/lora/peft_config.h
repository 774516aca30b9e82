// peft_config.h: PeftLoraConfig, a PEFT adapter_config.json for LoRA, and PEFT's rules for which module it
// adapts with which rank and alpha (reference/interfaces.md section 4.3). Features that change the math and
// that we do not implement (DoRA, modules_to_save, trained biases, ...) are rejected here, naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ls {

// target_modules / exclude_modules: a list of names (exact key or dot-aligned suffix) or one regex (fullmatch).
struct ModulePatterns {
  bool present = false;
  std::optional<std::string> regex;
  std::vector<std::string> names;
};

struct PeftLoraConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  ModulePatterns target_modules;   // "all-linear" is expanded to the seven projection names
  ModulePatterns exclude_modules;
  std::vector<int64_t> layers_to_transform;  // empty: all layers
  std::vector<std::string> layers_pattern;
  std::vector<std::pair<std::string, int64_t>> rank_pattern;   // in file order: first match wins
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::string base_model_name_or_path;
};

// Parses adapter_config.json text.
Result<PeftLoraConfig> parse_peft_config(std::string_view text);

// Module keys are full dotted names in the base model ("model.layers.3.self_attn.q_proj").
struct ModuleLoraParams {
  int64_t rank;
  double alpha;
  double scale;  // alpha / rank, or alpha / sqrt(rank) with rsLoRA
};

// Whether PEFT would put a LoRA on this module (exclusions applied).
Result<bool> is_lora_target(const PeftLoraConfig& config, const std::string& module_key);
// Rank, alpha and scale of a targeted module after rank_pattern / alpha_pattern.
Result<ModuleLoraParams> module_lora_params(const PeftLoraConfig& config, const std::string& module_key);

}  // namespace ls
