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

// Whether spec has the form of a Hub repo id: "org/name" or "org/name@revision", each part of letters, digits,
// '-', '_' and '.', not starting with '.'.
bool is_hub_repo_id(const std::string& spec);
// Resolves a Hub repo id in the cache only (never as a local path): models--org--name/snapshots/<sha>.
Result<std::string> resolve_hub_repo(const std::string& spec, const std::string& cache_dir = hub_cache_dir());

}  // namespace ls
