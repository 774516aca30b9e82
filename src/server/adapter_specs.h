// adapter_specs.h: the start-up adapter lists users bring, in their launchers' spellings: TGI's
// --lora-adapters / LORA_ADAPTERS ("id", "id@revision" or "name=/path", comma-separated) and vLLM's
// --lora-modules ("name=path" or JSON {"name", "path", "base_model_name"}). Each becomes a name (a Hub id is
// its own name, "org/name", as TGI requests name it) and a source for Engine::add_adapter.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ls::server {

struct AdapterSpec {
  std::string name;
  std::string source;           // a directory or a Hub id (org/name[@revision])
  std::string base_model_name;  // vLLM JSON form only
};

// One TGI entry; the whole comma-separated list.
Result<AdapterSpec> parse_tgi_adapter(const std::string& entry);
Result<std::vector<AdapterSpec>> parse_tgi_adapter_list(const std::string& list);
// One vLLM --lora-modules value.
Result<AdapterSpec> parse_vllm_lora_module(const std::string& value);

}  // namespace ls::server
