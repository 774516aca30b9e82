// download_cache.h: DownloadCache, a local directory of downloaded file sets (one object-storage version of
// an adapter each), capped in bytes with least-recently-used eviction. An entry is written into a temporary
// directory (".partial-<pid>-<n>") and published by one rename(2) under its id, so it is complete or absent,
// never half-visible; a failed fill leaves nothing behind, and partial directories of processes that died are
// removed when the cache opens. Entries in use (CacheLease) are never evicted. Ids are lower-case hex digests
// chosen by the caller, so entry paths are one safe component under the cache root by construction (and
// checked again after symlink resolution). Thread-safe; one process per directory is the supported use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace ls {

struct DownloadCacheOptions {
  std::string dir;
  int64_t max_bytes = int64_t{8} << 30;  // 0: no cap
};

class DownloadCache;

// A hold on one entry: it is not evicted while the lease lives.
class CacheLease {
 public:
  CacheLease(DownloadCache* cache, std::string id, std::string dir);
  ~CacheLease();
  CacheLease(const CacheLease&) = delete;
  CacheLease& operator=(const CacheLease&) = delete;
  const std::string& id() const { return id_; }
  const std::string& dir() const { return dir_; }

 private:
  DownloadCache* cache_;
  std::string id_, dir_;
};

class DownloadCache {
 public:
  // Creates the directory if needed, removes dead processes' partial downloads, and indexes the entries.
  static Result<std::unique_ptr<DownloadCache>> open(DownloadCacheOptions options);

  // The entry `id`, marked as just used; null when absent.
  std::unique_ptr<CacheLease> find(const std::string& id);
  // Publishes entry `id` of `bytes` bytes: evicts unleased entries (least recently used first) to make room,
  // runs fill(tmp_dir) to write the files, then renames tmp_dir to the entry. kResourceExhausted when the
  // entry cannot fit; fill's error otherwise. On any failure nothing of the attempt remains.
  Result<std::unique_ptr<CacheLease>> add(const std::string& id, int64_t bytes,
                                          const std::function<Status(const std::string& tmp_dir)>& fill);
  // Deletes entry `id` (its content proved bad) once no lease holds it.
  void remove(const std::string& id);

  const DownloadCacheOptions& options() const { return options_; }
  int64_t bytes() const;
  std::vector<std::string> ids() const;

 private:
  friend class CacheLease;
  explicit DownloadCache(DownloadCacheOptions options) : options_(std::move(options)) {}
  void release(const std::string& id);
  Status make_room_locked(int64_t bytes);
  void erase_locked(const std::string& id);
  std::string temp_dir_locked();

  struct Entry {
    int64_t bytes = 0;
    int64_t last_used_ns = 0;
    int32_t leases = 0;
    bool doomed = false;   // remove when the last lease goes
  };
  DownloadCacheOptions options_;
  std::string real_dir_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  int64_t pending_bytes_ = 0;  // entries being filled: counted against the cap, not yet visible
  uint64_t next_tmp_ = 0;
};

}  // namespace ls
