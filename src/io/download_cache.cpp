// download_cache.cpp: the entry index, LRU eviction under the byte cap, and publishing by rename.
#include "io/download_cache.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ls {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPartial = ".partial-";

int64_t now_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

bool is_hex_id(const std::string& s) {
  return !s.empty() && s.size() <= 128 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

int64_t dir_bytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(dir, ec))
    if (f.is_regular_file(ec)) total += static_cast<int64_t>(f.file_size(ec));
  return total;
}

std::string real_path(const std::string& p) {
  char buffer[PATH_MAX];
  return ::realpath(p.c_str(), buffer) ? std::string(buffer) : std::string();
}

}  // namespace

CacheLease::CacheLease(DownloadCache* cache, std::string id, std::string dir)
    : cache_(cache), id_(std::move(id)), dir_(std::move(dir)) {}
CacheLease::~CacheLease() { cache_->release(id_); }

Result<std::unique_ptr<DownloadCache>> DownloadCache::open(DownloadCacheOptions options) {
  if (options.dir.empty()) return invalid_argument("no adapter download cache directory configured");
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  std::unique_ptr<DownloadCache> cache(new DownloadCache(std::move(options)));
  cache->real_dir_ = real_path(cache->options_.dir);
  if (ec || cache->real_dir_.empty() || !fs::is_directory(cache->real_dir_))
    return invalid_argument("cannot create the adapter download cache " + cache->options_.dir +
                            (ec ? ": " + ec.message() : ""));
  for (const auto& d : fs::directory_iterator(cache->real_dir_, ec)) {
    const std::string name = d.path().filename().string();
    if (name.rfind(kPartial, 0) == 0) {
      const long pid = std::strtol(name.c_str() + std::char_traits<char>::length(kPartial), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(d.path(), ec);
      continue;
    }
    if (!is_hex_id(name) || !d.is_directory(ec) || d.is_symlink(ec)) continue;
    struct stat st {};
    if (::stat(d.path().c_str(), &st) != 0) continue;
    Entry e;
    e.bytes = dir_bytes(d.path().string());
    e.last_used_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    cache->entries_[name] = e;
  }
  return cache;
}

std::string DownloadCache::temp_dir_locked() {
  return real_dir_ + "/" + kPartial + std::to_string(::getpid()) + "-" + std::to_string(next_tmp_++);
}

std::unique_ptr<CacheLease> DownloadCache::find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.doomed) return nullptr;
  const std::string dir = real_dir_ + "/" + id;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {  // removed behind our back
    if (it->second.leases == 0) entries_.erase(it);
    return nullptr;
  }
  ++it->second.leases;
  it->second.last_used_ns = now_ns();
  ::utimensat(AT_FDCWD, dir.c_str(), nullptr, 0);  // the LRU order survives a restart
  return std::make_unique<CacheLease>(this, id, dir);
}

Status DownloadCache::make_room_locked(int64_t bytes) {
  const int64_t cap = options_.max_bytes;
  if (cap <= 0) return Status::ok();
  if (bytes > cap)
    return resource_exhausted("the adapter's " + std::to_string(bytes) + " bytes exceed the download cache's cap of " +
                              std::to_string(cap) + " bytes");
  for (;;) {
    int64_t used = pending_bytes_;
    for (const auto& [id, e] : entries_) used += e.bytes;
    if (used + bytes <= cap) return Status::ok();
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.leases == 0 && (victim == entries_.end() || it->second.last_used_ns < victim->second.last_used_ns))
        victim = it;
    if (victim == entries_.end())
      return resource_exhausted("the adapter download cache is full (" + std::to_string(used) + " of " +
                                std::to_string(cap) + " bytes, all in use)");
    erase_locked(victim->first);
  }
}

void DownloadCache::erase_locked(const std::string& id_ref) {
  const std::string id = id_ref;  // id_ref may be the key erased next
  entries_.erase(id);
  // Renamed away first, so a crash during the removal never leaves a partial entry under a valid id.
  const std::string doomed = temp_dir_locked();
  std::error_code ec;
  if (::rename((real_dir_ + "/" + id).c_str(), doomed.c_str()) == 0) fs::remove_all(doomed, ec);
}

Result<std::unique_ptr<CacheLease>> DownloadCache::add(const std::string& id, int64_t bytes,
                                                       const std::function<Status(const std::string&)>& fill) {
  if (!is_hex_id(id)) return invalid_argument("invalid download cache id \"" + id + "\"");
  if (auto lease = find(id)) return lease;
  std::string tmp;
  {
    std::lock_guard<std::mutex> lock(mu_);
    LS_RETURN_IF_ERROR(make_room_locked(bytes));
    pending_bytes_ += bytes;
    tmp = temp_dir_locked();
  }
  std::error_code ec;
  Status status = fs::create_directory(tmp, ec) ? fill(tmp) : internal_error("cannot create " + tmp + ": " + ec.message());
  const std::string real_tmp = real_path(tmp);
  if (status.is_ok() && (real_tmp.empty() || fs::path(real_tmp).parent_path().string() != real_dir_))
    status = invalid_argument("download directory " + tmp + " is outside the cache");
  std::lock_guard<std::mutex> lock(mu_);
  pending_bytes_ -= bytes;
  const std::string dir = real_dir_ + "/" + id;
  bool published = false;
  if (status.is_ok() && !entries_.count(id)) {
    // The same id is the same version: one that another cache on this directory published first is adopted.
    published = ::rename(tmp.c_str(), dir.c_str()) == 0;
    if (!published && !((errno == EEXIST || errno == ENOTEMPTY) && fs::is_directory(dir, ec)))
      status = internal_error("cannot publish " + dir + ": " + std::string(std::strerror(errno)));
  }
  if (!published) fs::remove_all(tmp, ec);  // failed, or published by someone else first
  if (!status.is_ok()) return status;
  if (!entries_.count(id)) {
    Entry e;
    e.bytes = dir_bytes(dir);
    entries_[id] = e;
  }
  Entry& e = entries_[id];
  ++e.leases;
  e.last_used_ns = now_ns();
  return std::make_unique<CacheLease>(this, id, dir);
}

void DownloadCache::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.leases > 0) it->second.doomed = true;
  else erase_locked(id);
}

void DownloadCache::release(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (--it->second.leases == 0 && it->second.doomed) erase_locked(id);
}

int64_t DownloadCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t total = 0;
  for (const auto& [id, e] : entries_) total += e.bytes;
  return total;
}

std::vector<std::string> DownloadCache::ids() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, e] : entries_) out.push_back(id);
  return out;
}

}  // namespace ls
