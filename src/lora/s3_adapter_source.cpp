// s3_adapter_source.cpp: root resolution, cached existence checks, and fetching an adapter version into the
// download cache.
#include "lora/s3_adapter_source.h"

#include <cstdlib>

#include "io/content_hash.h"

namespace ls {
namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";

std::string join_key(const std::string& prefix, const std::string& rest) {
  return prefix.empty() ? rest : prefix + "/" + rest;
}

}  // namespace

RemoteAdapterOptions RemoteAdapterOptions::from_environment() {
  RemoteAdapterOptions o;
  o.s3 = S3Options::from_environment();
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg) o.cache_dir = std::string(xdg) + "/loraserve/adapters";
  else if (home && *home) o.cache_dir = std::string(home) + "/.cache/loraserve/adapters";
  else o.cache_dir = "/tmp/loraserve-adapters";
  return o;
}

Status check_adapter_roots(const std::vector<std::string>& roots) {
  for (const std::string& root : roots) {
    if (!is_s3_url(root)) continue;
    if (!s3_supported())
      return invalid_argument("--adapter-dir " + root + ": this loraserve was built without object storage "
                              "support (LORASERVE_S3=OFF)");
    auto loc = parse_s3_url(root);
    if (!loc.is_ok()) return loc.status().with_context("--adapter-dir");
  }
  return Status::ok();
}

S3AdapterSource::S3AdapterSource(const std::vector<std::string>& roots, RemoteAdapterOptions options)
    : options_(std::move(options)), client_(options_.s3) {
  for (const std::string& root : roots) {
    if (!is_s3_url(root)) continue;
    auto loc = parse_s3_url(root);
    if (loc.is_ok()) roots_.push_back(std::move(loc).value());
  }
}

Result<std::string> S3AdapterSource::find(const std::string& name) {
  const auto now = std::chrono::steady_clock::now();
  const auto ttl = std::chrono::duration<double>(options_.exists_ttl_s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_.find(name);
    if (it != known_.end() && now - it->second.at < ttl) {
      if (it->second.url.empty()) return not_found("adapter \"" + name + "\" not found");
      return it->second.url;
    }
  }
  std::string url;
  for (const S3Location& root : roots_) {
    const std::string dir = join_key(root.key, name);
    const std::string config = dir + "/" + kConfigFile;
    LS_ASSIGN_OR_RETURN(auto objects, client_.list(root.bucket, config, 1));
    if (!objects.empty() && objects.front().key == config) {
      url = "s3://" + root.bucket + "/" + dir;
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (known_.size() > 100000) known_.clear();  // bounded: names come from requests
  known_[name] = {now, url};
  if (url.empty()) return not_found("adapter \"" + name + "\" not found");
  return url;
}

Result<std::string> S3AdapterSource::contained(const std::string& url) const {
  if (roots_.empty())
    return invalid_argument("adapter_source s3 needs an --adapter-dir s3://bucket/prefix to look in");
  LS_ASSIGN_OR_RETURN(S3Location loc, parse_s3_url(url));
  for (const S3Location& root : roots_) {
    if (loc.bucket != root.bucket || loc.key.empty() || loc.key == root.key) continue;
    if (root.key.empty() || loc.key.rfind(root.key + "/", 0) == 0) return loc.url();
  }
  return invalid_argument("adapter \"" + url + "\" is not inside an --adapter-dir s3:// root");
}

Result<DownloadCache*> S3AdapterSource::open_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!cache_) {
    LS_ASSIGN_OR_RETURN(cache_, DownloadCache::open({options_.cache_dir, options_.cache_max_bytes}));
  }
  return cache_.get();
}

DownloadCache* S3AdapterSource::cache() {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.get();
}

Result<std::unique_ptr<CacheLease>> S3AdapterSource::fetch(const std::string& url) {
  LS_ASSIGN_OR_RETURN(S3Location loc, parse_s3_url(url));
  if (loc.key.empty()) return invalid_argument("\"" + url + "\" names a bucket, not an adapter directory");
  LS_ASSIGN_OR_RETURN(auto objects, client_.list(loc.bucket, loc.key + "/"));
  const S3Object* files[2] = {nullptr, nullptr};
  for (const S3Object& o : objects) {
    if (o.key == loc.key + "/" + kConfigFile) files[0] = &o;
    if (o.key == loc.key + "/" + kWeightsFile) files[1] = &o;
  }
  if (!files[0]) return not_found("no adapter at " + loc.url() + " (no " + kConfigFile + ")");
  if (!files[1]) return not_found(loc.url() + "/" + kWeightsFile + " not found");
  // The version: which objects, how large, which ETags. A changed object is a new cache entry.
  std::string version = loc.url();
  for (const S3Object* f : files) version += "\n" + f->key + " " + std::to_string(f->size) + " " + f->etag;
  const std::string id = sha256_hex(version).substr(0, 40);
  LS_ASSIGN_OR_RETURN(DownloadCache * cache, open_cache());
  const std::string bucket = loc.bucket;
  return cache->add(id, files[0]->size + files[1]->size, [&](const std::string& tmp) -> Status {
    LS_RETURN_IF_ERROR(client_.download(bucket, *files[0], tmp + "/" + kConfigFile));
    return client_.download(bucket, *files[1], tmp + "/" + kWeightsFile);
  });
}

void S3AdapterSource::discard(const std::string& id) {
  if (DownloadCache* c = cache()) c->remove(id);
}

}  // namespace ls
