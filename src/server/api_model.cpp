// api_model.cpp: model and adapter name resolution for both API families.
#include "server/api_model.h"

#include <algorithm>
#include <filesystem>

namespace ls::server {
namespace {

constexpr const char* kLoraxBaseModel = "__base_model__";

std::string canonical_path(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : p.string();
}

}  // namespace

bool ApiModel::is_base_name(const std::string& name) const {
  return std::find(names.begin(), names.end(), name) != names.end() || name == root;
}

Result<AdapterRef> ApiModel::resolve_adapter_id(const std::optional<std::string>& adapter_id,
                                                const std::optional<std::string>& adapter_source) const {
  const std::string source = adapter_source.value_or("");
  if (!source.empty() && source != "hub" && source != "local" && source != "s3")
    return unsupported("`adapter_source` \"" + *adapter_source + "\" is not supported; use \"hub\", \"local\" or \"s3\"");
  if (!adapter_id || adapter_id->empty() || *adapter_id == kLoraxBaseModel) return AdapterRef{};
  const std::string& id = *adapter_id;
  if (source != "local" && has_adapter && has_adapter(id)) return AdapterRef{id, ""};
  if (adapters) {
    const std::string wanted_path = source == "local" ? canonical_path(id) : std::string();
    for (const AdapterInfo& a : adapters()) {
      if (source == "local") {
        if (a.name == id || canonical_path(a.path) == wanted_path || canonical_path(a.source) == wanted_path)
          return AdapterRef{a.name, ""};
      } else if (a.source == id || a.source.substr(0, a.source.find('@')) == id) {
        return AdapterRef{a.name, ""};
      }
    }
  }
  // A path or URL the engine resolves and checks to lie inside one of its --adapter-dir roots.
  if (source == "local" || source == "s3") return AdapterRef{id, source};
  return not_found("adapter `" + id + "` was not found: it is not registered (--lora-adapters, --lora-modules), "
                   "not under an --adapter-dir and not in the local Hub cache");
}

Result<std::string> ApiModel::resolve_model(const std::optional<std::string>& model) const {
  if (!model || model->empty() || *model == "tgi" || is_base_name(*model)) return std::string();
  const std::string& m = *model;
  if (has_adapter && has_adapter(m)) return m;
  // TGI uses `model` as adapter_id: a Hub id an adapter was registered from.
  if (adapters)
    for (const AdapterInfo& a : adapters())
      if (a.source == m) return a.name;
  // Ray Serve LLM: "base_model_id:lora_id"; the adapter part may itself contain ':'.
  const size_t colon = m.find(':');
  if (colon != std::string::npos && has_adapter) {
    const std::string base = m.substr(0, colon), lora = m.substr(colon + 1);
    if (is_base_name(base) && has_adapter(lora)) return lora;
  }
  return not_found("The model `" + m + "` does not exist.");
}

std::string ApiModel::response_model_name(const std::optional<std::string>& requested,
                                          const std::string& adapter) const {
  if (adapter.empty()) return id();
  if (requested && *requested != adapter && requested->find(':') != std::string::npos) return *requested;
  return adapter;
}

}  // namespace ls::server
