// adapter_registry.cpp: loading, hashing and registering adapters by name.
#include "lora/adapter_registry.h"

#include "io/content_hash.h"
#include "io/hub_cache.h"

namespace ls {

bool valid_adapter_name(const std::string& name) {
  if (name.empty() || name.size() > 256 || name == "." || name == "..") return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\') return false;
  return true;
}

Result<std::shared_ptr<const RegisteredAdapter>> AdapterRegistry::add(const std::string& name,
                                                                      const std::string& source,
                                                                      const std::string& base_model_name) {
  if (!valid_adapter_name(name)) return invalid_argument("invalid adapter name \"" + name + "\"");
  auto entry = std::make_shared<RegisteredAdapter>();
  entry->name = name;
  entry->source = source;
  entry->base_model_name = base_model_name;
  LS_ASSIGN_OR_RETURN(entry->path, resolve_model_dir(source));
  auto loaded = load_lora_adapter(entry->path, model_);
  if (!loaded.is_ok()) return loaded.status().with_context("adapter \"" + name + "\"");
  entry->weights = std::move(loaded).value();
  LS_ASSIGN_OR_RETURN(entry->content_hash, sha256_of_files({entry->path + "/adapter_config.json",
                                                            entry->path + "/adapter_model.safetensors"}));
  entry->rank = static_cast<int32_t>(entry->weights.max_rank);
  if (max_rank_ > 0 && entry->rank > max_rank_)
    return invalid_argument("adapter \"" + name + "\" has rank " + std::to_string(entry->rank) +
                            ", above the server's --max-lora-rank " + std::to_string(max_rank_));
  bool targeted[kNumLoraModules] = {};
  for (const auto& layer : entry->weights.layers)
    for (int m = 0; m < kNumLoraModules; ++m) {
      targeted[m] |= layer[m].rank > 0;
      entry->bytes += (layer[m].a.size() + layer[m].b.size()) * sizeof(float);
    }
  for (int m = 0; m < kNumLoraModules; ++m)
    if (targeted[m]) entry->target_modules.push_back(lora_module_name(static_cast<LoraModule>(m)));
  std::lock_guard<std::mutex> lock(mu_);
  entry->key = next_key_++;
  std::shared_ptr<const RegisteredAdapter> shared = std::move(entry);
  by_name_[name] = shared;
  return shared;
}

std::shared_ptr<const RegisteredAdapter> AdapterRegistry::find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

bool AdapterRegistry::remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return by_name_.erase(name) > 0;
}

std::vector<std::shared_ptr<const RegisteredAdapter>> AdapterRegistry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const RegisteredAdapter>> out;
  for (const auto& [name, entry] : by_name_) out.push_back(entry);
  return out;
}

}  // namespace ls
