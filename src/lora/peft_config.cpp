// peft_config.cpp: adapter_config.json parsing and PEFT's module matching rules (check_target_module_exists,
// get_pattern_key), reimplemented from the rules in reference/interfaces.md section 4.3.
#include "lora/peft_config.h"

#include <cctype>
#include <cmath>

#include "lora/module_regex.h"

namespace ls {
namespace {

const char* const kAllLinear[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

Result<ModulePatterns> parse_patterns(const Json& json, const char* key) {
  ModulePatterns p;
  const Json* v = find_field(json, key);
  if (!v) return p;
  p.present = true;
  if (v->is_string()) {
    std::string s = v->get<std::string>();
    if (s == "all-linear") {
      p.names.assign(std::begin(kAllLinear), std::end(kAllLinear));
    } else {
      p.regex = std::move(s);
    }
    return p;
  }
  if (!v->is_array()) return invalid_argument(std::string("field \"") + key + "\" must be a list of names or a regex string");
  for (const Json& name : *v) {
    if (!name.is_string()) return invalid_argument(std::string("field \"") + key + "\" must hold strings");
    p.names.push_back(name.get<std::string>());
  }
  if (p.names.empty()) p.present = false;
  return p;
}

// rank_pattern / alpha_pattern in file order (nlohmann::json sorts keys; PEFT's first match follows the file).
template <typename T>
Result<std::vector<std::pair<std::string, T>>> parse_pattern_map(const nlohmann::ordered_json& json, const char* key) {
  std::vector<std::pair<std::string, T>> out;
  auto field = json.find(key);
  if (field == json.end() || field->is_null()) return out;
  if (!field->is_object()) return invalid_argument(std::string("field \"") + key + "\" must be an object");
  for (auto it = field->begin(); it != field->end(); ++it) {
    if (!it.value().is_number()) return invalid_argument(std::string("field \"") + key + "\" values must be numbers");
    out.emplace_back(it.key(), it.value().template get<T>());
  }
  return out;
}

Status reject_unsupported(const Json& json) {
  LS_ASSIGN_OR_RETURN(std::string peft_type, optional_string(json, "peft_type", "LORA"));
  if (peft_type != "LORA") return unsupported("peft_type \"" + peft_type + "\" is not supported (LORA only)");
  LS_ASSIGN_OR_RETURN(bool dora, optional_bool(json, "use_dora", false));
  if (dora) return unsupported("use_dora=true (DoRA) is not supported");
  if (const Json* m = find_field(json, "modules_to_save"); m && !(m->is_array() && m->empty()))
    return unsupported("modules_to_save is not supported (the adapter replaces whole base modules)");
  LS_ASSIGN_OR_RETURN(std::string bias, optional_string(json, "bias", "none"));
  if (bias != "none") return unsupported("bias=\"" + bias + "\" is not supported (only \"none\")");
  LS_ASSIGN_OR_RETURN(bool lora_bias, optional_bool(json, "lora_bias", false));
  if (lora_bias) return unsupported("lora_bias=true is not supported");
  LS_ASSIGN_OR_RETURN(bool fan_in_fan_out, optional_bool(json, "fan_in_fan_out", false));
  if (fan_in_fan_out) return unsupported("fan_in_fan_out=true is not supported (Llama-family weights are [out, in])");
  for (const char* key : {"layer_replication", "target_parameters", "trainable_token_indices", "alora_invocation_tokens"}) {
    if (const Json* v = find_field(json, key); v && !(v->is_array() && v->empty()) && !(v->is_object() && v->empty()))
      return unsupported(std::string(key) + " is not supported");
  }
  return Status::ok();
}

Result<std::vector<int64_t>> parse_layers(const Json& json) {
  std::vector<int64_t> layers;
  const Json* v = find_field(json, "layers_to_transform");
  if (!v) return layers;
  if (v->is_number_integer()) {
    layers.push_back(v->get<int64_t>());
    return layers;
  }
  if (!v->is_array()) return invalid_argument("field \"layers_to_transform\" must be an integer or a list");
  for (const Json& l : *v) {
    if (!l.is_number_integer()) return invalid_argument("field \"layers_to_transform\" must hold integers");
    layers.push_back(l.get<int64_t>());
  }
  return layers;
}

}  // namespace

Result<PeftLoraConfig> parse_peft_config(std::string_view text) {
  LS_ASSIGN_OR_RETURN(Json json, parse_json(text, "adapter config"));
  nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, false);
  if (!json.is_object() || !ordered.is_object()) return invalid_argument("adapter config is not a JSON object");
  LS_RETURN_IF_ERROR(reject_unsupported(json));
  PeftLoraConfig c;
  LS_ASSIGN_OR_RETURN(c.r, optional_int(json, "r", 8));
  if (c.r <= 0) return invalid_argument("field \"r\" must be positive");
  LS_ASSIGN_OR_RETURN(c.lora_alpha, optional_number(json, "lora_alpha", 8));
  LS_ASSIGN_OR_RETURN(c.use_rslora, optional_bool(json, "use_rslora", false));
  LS_ASSIGN_OR_RETURN(c.target_modules, parse_patterns(json, "target_modules"));
  if (!c.target_modules.present) return invalid_argument("field \"target_modules\" is missing or empty");
  LS_ASSIGN_OR_RETURN(c.exclude_modules, parse_patterns(json, "exclude_modules"));
  LS_ASSIGN_OR_RETURN(c.layers_to_transform, parse_layers(json));
  if (const Json* lp = find_field(json, "layers_pattern")) {
    if (lp->is_string()) {
      c.layers_pattern.push_back(lp->get<std::string>());
    } else if (lp->is_array()) {
      for (const Json& p : *lp) {
        if (!p.is_string()) return invalid_argument("field \"layers_pattern\" must hold strings");
        c.layers_pattern.push_back(p.get<std::string>());
      }
    } else {
      return invalid_argument("field \"layers_pattern\" must be a string or a list");
    }
  }
  LS_ASSIGN_OR_RETURN(c.rank_pattern, parse_pattern_map<int64_t>(ordered, "rank_pattern"));
  LS_ASSIGN_OR_RETURN(c.alpha_pattern, parse_pattern_map<double>(ordered, "alpha_pattern"));
  for (const auto& [pattern, rank] : c.rank_pattern)
    if (rank <= 0) return invalid_argument("rank_pattern \"" + pattern + "\" must be positive");
  LS_ASSIGN_OR_RETURN(c.base_model_name_or_path, optional_string(json, "base_model_name_or_path", ""));
  return c;
}

namespace {

// PEFT: a list entry matches when the key equals it or ends with "." + entry; a string is a fullmatch regex.
Result<bool> matches_patterns(const ModulePatterns& p, const std::string& key, bool* exact) {
  *exact = false;
  if (p.regex) return regex_matches(*p.regex, key, RegexAnchor::kFullMatch);
  for (const std::string& name : p.names) {
    if (key == name) {
      *exact = true;
      return true;
    }
  }
  for (const std::string& name : p.names) {
    if (key.size() > name.size() && key.compare(key.size() - name.size(), name.size(), name) == 0 &&
        key[key.size() - name.size() - 1] == '.')
      return true;
  }
  return false;
}

// The layer index PEFT reads from a key: re.match(r".*\.[^.]*\.(\d+)\.", key), or with layers_pattern
// re.match(rf".*\.{pattern}\.(\d+)\.", key) for each pattern in turn.
Result<std::optional<int64_t>> layer_index_of(const PeftLoraConfig& c, const std::string& key) {
  std::vector<std::string> patterns;
  if (c.layers_pattern.empty()) patterns.push_back(R"(.*\.[^.]*\.(\d+)\.)");
  for (const std::string& p : c.layers_pattern) patterns.push_back(".*\\." + p + "\\.(\\d+)\\.");
  for (const std::string& pattern : patterns) {
    LS_ASSIGN_OR_RETURN(auto digits, regex_capture(pattern, key, 1));
    if (digits && digits->size() < 10) return std::optional<int64_t>(std::stoll(*digits));
  }
  return std::optional<int64_t>();
}

}  // namespace

Result<bool> is_lora_target(const PeftLoraConfig& c, const std::string& key) {
  bool exact = false;
  if (c.exclude_modules.present) {
    LS_ASSIGN_OR_RETURN(bool excluded, matches_patterns(c.exclude_modules, key, &exact));
    if (excluded) return false;
  }
  LS_ASSIGN_OR_RETURN(bool found, matches_patterns(c.target_modules, key, &exact));
  if (!found || exact || c.target_modules.regex || c.layers_to_transform.empty()) return found;
  LS_ASSIGN_OR_RETURN(auto layer, layer_index_of(c, key));
  if (!layer) return false;
  for (int64_t l : c.layers_to_transform)
    if (l == *layer) return true;
  return false;
}

Result<ModuleLoraParams> module_lora_params(const PeftLoraConfig& c, const std::string& key) {
  ModuleLoraParams p{c.r, c.lora_alpha, 0};
  for (const auto& [pattern, rank] : c.rank_pattern) {
    LS_ASSIGN_OR_RETURN(bool m, regex_matches("(.*\\.)?(" + pattern + ")$", key, RegexAnchor::kMatchAtStart));
    if (m) {
      p.rank = rank;
      break;
    }
  }
  for (const auto& [pattern, alpha] : c.alpha_pattern) {
    LS_ASSIGN_OR_RETURN(bool m, regex_matches("(.*\\.)?(" + pattern + ")$", key, RegexAnchor::kMatchAtStart));
    if (m) {
      p.alpha = alpha;
      break;
    }
  }
  p.scale = c.use_rslora ? p.alpha / std::sqrt(static_cast<double>(p.rank)) : p.alpha / static_cast<double>(p.rank);
  return p;
}

}  // namespace ls
