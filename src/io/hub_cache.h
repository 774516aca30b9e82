// hub_cache.h: finds a model or adapter on local storage: a directory path as given, or a Hugging Face Hub repo
// id ("org/name", optionally "org/name@revision") resolved in the local Hub cache
// (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub) without any network access.
#pragma once

#include <string>

#include "core/status.h"

namespace ls {

// The Hub cache directory the environment selects.
std::string hub_cache_dir();

// Resolves `spec` to a local directory: an existing directory is returned as is; otherwise a repo id is looked
// up as models--org--name/snapshots/<sha> in cache_dir (refs/<revision> names the sha, default "main").
Result<std::string> resolve_model_dir(const std::string& spec, const std::string& cache_dir = hub_cache_dir());

}  // namespace ls
