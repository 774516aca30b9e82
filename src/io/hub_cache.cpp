// hub_cache.cpp: Hub cache layout resolution (models--org--name/{refs,snapshots}).
#include "io/hub_cache.h"

#include <cstdlib>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace ls {
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_hex_sha(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

bool is_safe_component(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\\') == std::string::npos;
}

}  // namespace

std::string hub_cache_dir() {
  if (auto v = env_or_empty("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env_or_empty("HUGGINGFACE_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env_or_empty("HF_HOME"); !v.empty()) return v + "/hub";
  if (auto v = env_or_empty("XDG_CACHE_HOME"); !v.empty()) return v + "/huggingface/hub";
  return env_or_empty("HOME") + "/.cache/huggingface/hub";
}

bool is_hub_repo_id(const std::string& spec) {
  const auto slash = spec.find('/');
  if (slash == std::string::npos) return false;
  auto part_ok = [](const std::string& p) {
    if (p.empty() || p.size() > 96 || p[0] == '.') return false;
    for (char c : p)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
    return true;
  };
  std::string rest = spec.substr(slash + 1), revision;
  if (auto at = rest.find('@'); at != std::string::npos) {
    revision = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!part_ok(revision)) return false;
  }
  return part_ok(spec.substr(0, slash)) && part_ok(rest);
}

Result<std::string> resolve_hub_repo(const std::string& spec, const std::string& cache_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string repo = spec, revision = "main";
  if (auto at = spec.find('@'); at != std::string::npos) {
    repo = spec.substr(0, at);
    revision = spec.substr(at + 1);
  }
  const auto slash = repo.find('/');
  if (slash == std::string::npos || !is_safe_component(repo.substr(0, slash)) ||
      !is_safe_component(repo.substr(slash + 1)) || !is_safe_component(revision)) {
    return not_found("\"" + spec + "\" is not a Hub repo id (org/name[@revision])");
  }
  const std::string repo_dir = cache_dir + "/models--" + repo.substr(0, slash) + "--" + repo.substr(slash + 1);
  if (!fs::is_directory(repo_dir, ec))
    return not_found("\"" + spec + "\" is neither a directory nor a repo in the Hub cache " + cache_dir);
  std::string sha = revision;
  if (!is_hex_sha(revision)) {
    std::ifstream ref(repo_dir + "/refs/" + revision);
    if (!ref || !(ref >> sha) || !is_hex_sha(sha))
      return not_found("Hub cache has no usable refs/" + revision + " for " + repo);
  }
  const std::string snapshot = repo_dir + "/snapshots/" + sha;
  if (!fs::is_directory(snapshot, ec)) return not_found("Hub cache has no snapshot " + sha + " for " + repo);
  return snapshot;
}

Result<std::string> resolve_model_dir(const std::string& spec, const std::string& cache_dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) return spec;
  auto hub = resolve_hub_repo(spec, cache_dir);
  if (!hub.is_ok() && hub.status().message().find("is not a Hub repo id") != std::string::npos)
    return not_found("no such directory: " + spec);
  return hub;
}

}  // namespace ls
