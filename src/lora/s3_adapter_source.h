// s3_adapter_source.h: S3AdapterSource, adapters in object storage: `--adapter-dir s3://bucket/prefix` roots
// (a request's adapter name is a "directory" under a root, as in Ray Serve LLM's dynamic_lora_loading_path),
// LoRAX's adapter_source "s3" (an s3:// URL, which must lie inside a root) and s3:// paths given to the
// management API. fetch() lists the adapter's prefix, and serves its files from the DownloadCache when the
// same version (keys, sizes, ETags) is there, else downloads adapter_config.json and
// adapter_model.safetensors into a new cache entry (verified, renamed into place whole). A name's existence is
// asked of the store at most once per exists_ttl_s. Thread-safe; the cache directory is opened on first use,
// so a bad one fails the requests that need it, not the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io/download_cache.h"
#include "io/s3_client.h"

namespace ls {

struct RemoteAdapterOptions {
  S3Options s3;                          // endpoint, region, credentials (S3Options::from_environment())
  std::string cache_dir;                 // where downloaded adapters go (--adapter-cache-dir)
  int64_t cache_max_bytes = int64_t{8} << 30;  // --adapter-cache-bytes (0: no cap)
  double exists_ttl_s = 10;              // how long a "this name exists / does not" answer is reused

  // S3Options::from_environment(), and the cache in $XDG_CACHE_HOME/loraserve/adapters (else
  // $HOME/.cache/loraserve/adapters). Called once by the command line.
  static RemoteAdapterOptions from_environment();
};

class S3AdapterSource {
 public:
  // `roots`: the s3:// entries of --adapter-dir (others are ignored; invalid ones are refused by
  // check_adapter_roots).
  S3AdapterSource(const std::vector<std::string>& roots, RemoteAdapterOptions options);

  bool has_roots() const { return !roots_.empty(); }
  const std::vector<S3Location>& roots() const { return roots_; }

  // The URL of adapter `name` (one path component) in the first root that holds it (its
  // adapter_config.json); kNotFound when none does; kFailedDependency when the store cannot be asked.
  Result<std::string> find(const std::string& name);
  // A request's s3:// URL (LoRAX adapter_source "s3"), normalized; kInvalidArgument outside every root.
  Result<std::string> contained(const std::string& url) const;

  // The adapter at `url` as local files: a lease on its cache entry (the directory holds adapter_config.json
  // and adapter_model.safetensors).
  Result<std::unique_ptr<CacheLease>> fetch(const std::string& url);
  // Drops a cache entry whose files did not load (so the next request downloads again).
  void discard(const std::string& id);

  DownloadCache* cache();  // null until the first fetch opened it

 private:
  Result<DownloadCache*> open_cache();

  std::vector<S3Location> roots_;
  RemoteAdapterOptions options_;
  S3Client client_;
  std::mutex mu_;
  std::unique_ptr<DownloadCache> cache_;
  struct Known {
    std::chrono::steady_clock::time_point at;
    std::string url;  // "" : in no root
  };
  std::map<std::string, Known> known_;
};

// --adapter-dir values: local directories, or s3:// URLs that parse (kInvalidArgument otherwise, or when
// this build has no object storage support).
Status check_adapter_roots(const std::vector<std::string>& roots);

}  // namespace ls
