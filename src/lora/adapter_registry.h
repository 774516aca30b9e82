// adapter_registry.h: AdapterRegistry, the adapters a server knows by name: each loaded into host memory,
// validated against the base model, with its content hash (identity) and a summary (rank, targets, bytes).
// Entries are immutable and shared: a request holds its adapter's entry for its whole life, so replacing or
// removing a name never changes what running requests compute. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "lora/lora_adapter.h"

namespace ls {

struct RegisteredAdapter {
  uint64_t key = 0;             // unique per registration (never reused), for caches keyed by entry
  std::string name;
  std::string source;           // what the user gave: a path or a Hub id
  std::string path;             // the resolved directory
  std::string base_model_name;  // vLLM's parent ("" = the base's first served name)
  std::string content_hash;     // sha256 over adapter_config.json and adapter_model.safetensors
  LoraAdapter weights;          // float32, scales folded into B
  int32_t rank = 0;             // the largest rank of any module
  std::vector<std::string> target_modules;  // adapted projection names present in any layer
  size_t bytes = 0;             // host bytes of A and B
};

class AdapterRegistry {
 public:
  explicit AdapterRegistry(ModelConfig model, int32_t max_rank = 0) : model_(std::move(model)), max_rank_(max_rank) {}

  // Loads `source` (a directory or a Hub id in the local cache), validates it, and registers it as `name`,
  // replacing an entry of the same name. Errors: kNotFound, kInvalidArgument, kUnsupported, kCorrupt.
  Result<std::shared_ptr<const RegisteredAdapter>> add(const std::string& name, const std::string& source,
                                                       const std::string& base_model_name = "");
  std::shared_ptr<const RegisteredAdapter> find(const std::string& name) const;
  bool remove(const std::string& name);
  std::vector<std::shared_ptr<const RegisteredAdapter>> list() const;

 private:
  ModelConfig model_;
  int32_t max_rank_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const RegisteredAdapter>> by_name_;
  uint64_t next_key_ = 1;
};

// Whether a string can name an adapter: 1-256 bytes of printable ASCII without '/', '\\', NUL or
// whitespace, and not "." or "..".
bool valid_adapter_name(const std::string& name);

}  // namespace ls
