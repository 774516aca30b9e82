// adapter_specs.cpp: parsing the start-up adapter lists.
#include "server/adapter_specs.h"

#include <filesystem>

#include "core/json.h"

namespace ls::server {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// The registered name of an adapter given only by its source: a directory's base name, or the Hub id itself
// without its @revision (TGI requests then name it by that id).
std::string name_of_source(const std::string& source) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool local = source.rfind("/", 0) == 0 || source.rfind(".", 0) == 0 || fs::is_directory(source, ec);
  if (local) {
    std::string base = fs::path(source).lexically_normal().filename().string();
    if (base.empty()) base = fs::path(source).lexically_normal().parent_path().filename().string();
    return base;
  }
  return source.substr(0, source.find('@'));
}

}  // namespace

Result<AdapterSpec> parse_tgi_adapter(const std::string& raw) {
  const std::string entry = trim(raw);
  if (entry.empty()) return invalid_argument("empty adapter entry");
  AdapterSpec spec;
  const size_t eq = entry.find('=');
  if (eq != std::string::npos) {
    spec.name = trim(entry.substr(0, eq));
    spec.source = trim(entry.substr(eq + 1));
    if (spec.name.empty() || spec.source.empty())
      return invalid_argument("adapter entry \"" + entry + "\" must be name=path");
  } else {
    spec.source = entry;
    spec.name = name_of_source(entry);
    if (spec.name.empty()) return invalid_argument("cannot name adapter \"" + entry + "\"");
  }
  return spec;
}

Result<std::vector<AdapterSpec>> parse_tgi_adapter_list(const std::string& list) {
  std::vector<AdapterSpec> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string item = trim(list.substr(pos, comma - pos));
    if (!item.empty()) {
      LS_ASSIGN_OR_RETURN(AdapterSpec spec, parse_tgi_adapter(item));
      out.push_back(std::move(spec));
    }
    pos = comma + 1;
  }
  return out;
}

Result<AdapterSpec> parse_vllm_lora_module(const std::string& raw) {
  const std::string value = trim(raw);
  if (value.empty()) return invalid_argument("empty --lora-modules value");
  if (value.front() != '{') {
    const size_t eq = value.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
      return invalid_argument("--lora-modules \"" + value + "\" must be name=path or a JSON object");
    return AdapterSpec{trim(value.substr(0, eq)), trim(value.substr(eq + 1)), ""};
  }
  LS_ASSIGN_OR_RETURN(Json json, parse_json(value, "--lora-modules"));
  if (!json.is_object()) return invalid_argument("--lora-modules JSON must be an object");
  AdapterSpec spec;
  LS_ASSIGN_OR_RETURN(spec.name, required_string(json, "name"));
  LS_ASSIGN_OR_RETURN(spec.source, required_string(json, "path"));
  LS_ASSIGN_OR_RETURN(spec.base_model_name, optional_string(json, "base_model_name", ""));
  return spec;
}

}  // namespace ls::server
