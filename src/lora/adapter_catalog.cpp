// adapter_catalog.cpp: resolution with path containment, fingerprints, the loader threads (which fetch
// object-storage adapters into the download cache before loading them) and LRU eviction.
#include "lora/adapter_catalog.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <future>

#include "core/file.h"
#include "io/content_hash.h"
#include "io/hub_cache.h"
#include "lora/lora_slots.h"

namespace ls {

struct AdapterClaim::Entry {
  enum State : int { kLoading, kReady, kFailed };
  std::string name, source, path, base_model_name, fingerprint;
  std::string remote;                             // s3:// URL fetched before loading ("" : local)
  std::atomic<int> state{kLoading};
  Status error;                                   // written before state becomes kFailed
  std::shared_ptr<const RegisteredAdapter> adapter;  // written before state becomes kReady
  double last_used = 0;                           // guarded by the catalog's mutex
};

bool AdapterClaim::ready() const { return entry_->state.load(std::memory_order_acquire) == Entry::kReady; }
bool AdapterClaim::failed() const { return entry_->state.load(std::memory_order_acquire) == Entry::kFailed; }
Status AdapterClaim::error() const { return failed() ? entry_->error : Status::ok(); }
std::shared_ptr<const RegisteredAdapter> AdapterClaim::adapter() const { return ready() ? entry_->adapter : nullptr; }
const std::string& AdapterClaim::name() const { return entry_->name; }

namespace {

const char* const kAdapterFiles[] = {"adapter_config.json", "adapter_model.safetensors"};

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The canonical path (symlinks resolved), or empty when it does not exist.
std::string real_path(const std::string& p) {
  char buffer[PATH_MAX];
  if (!::realpath(p.c_str(), buffer)) return std::string();
  return buffer;
}

bool inside(const std::string& real, const std::string& root) {
  return !real.empty() && (real == root || (real.size() > root.size() && real.compare(0, root.size(), root) == 0 &&
                                            real[root.size()] == '/'));
}

// (device, inode, size, mtime, ctime) of each adapter file: changes when a file is rewritten or replaced.
std::string fingerprint(const std::string& dir) {
  std::string fp;
  for (const char* f : kAdapterFiles) {
    struct stat st {};
    if (::stat((dir + "/" + f).c_str(), &st) != 0) {
      fp += "-;";
      continue;
    }
    fp += std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
          std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ":" +
          std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + ";";
  }
  return fp;
}

// A directory inside `root` whose adapter files (if present) also resolve inside it.
Status check_contained(const std::string& dir_real, const std::string& root, const std::string& what) {
  if (!inside(dir_real, root) || dir_real == root) return invalid_argument(what + " is outside the adapter directories");
  for (const char* f : kAdapterFiles) {
    const std::string file = dir_real + "/" + f;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(file, ec))) continue;
    if (!inside(real_path(file), root)) return invalid_argument(what + ": " + f + " leads outside the adapter directories");
  }
  return Status::ok();
}

bool valid_registered_name(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// The adapted modules and the float32 bytes of A and B.
void note_modules(RegisteredAdapter& adapter) {
  bool targeted[kNumLoraModules] = {};
  adapter.bytes = 0;
  for (const auto& layer : adapter.weights.layers)
    for (int m = 0; m < kNumLoraModules; ++m) {
      targeted[m] |= layer[m].rank > 0;
      adapter.bytes += (layer[m].a.size() + layer[m].b.size()) * sizeof(float);
    }
  for (int m = 0; m < kNumLoraModules; ++m)
    if (targeted[m]) adapter.target_modules.push_back(lora_module_name(static_cast<LoraModule>(m)));
}

}  // namespace

Result<AdapterSource> parse_adapter_source(const std::string& source) {
  std::string s;
  for (char c : source) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (s.empty()) return AdapterSource::kName;
  if (s == "local") return AdapterSource::kLocal;
  if (s == "hub") return AdapterSource::kHub;
  if (s == "s3") return AdapterSource::kS3;
  return invalid_argument("adapter_source \"" + source + "\" is not supported (local, hub, s3)");
}

bool valid_adapter_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (unsigned char c : name)
    if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '%') return false;
  return true;
}

AdapterCatalog::AdapterCatalog(ModelConfig model, AdapterCatalogOptions options, std::function<void()> on_change)
    : model_(std::move(model)), options_(std::move(options)), on_change_(std::move(on_change)) {
  for (const std::string& root : options_.roots) {
    if (is_s3_url(root)) continue;
    const std::string real = real_path(root);
    if (real.empty()) continue;
    real_roots_.push_back(real);
    real_root_names_.push_back(root);
  }
  s3_ = std::make_unique<S3AdapterSource>(options_.roots, options_.remote);
  reclaimer_ = std::make_shared<SerialWorker>();
  const int threads = std::max(1, options_.loader_threads);
  for (int i = 0; i < threads; ++i) loaders_.emplace_back([this] { loader(); });
}

AdapterCatalog::~AdapterCatalog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : loaders_) t.join();
  entries_.clear();
  reclaimer_->close();  // what is still staged when the catalog is gone is freed by whoever drops it
}

std::shared_ptr<const StagedAdapter> AdapterCatalog::reclaimed(std::shared_ptr<const StagedAdapter> staged) {
  const StagedAdapter* p = staged.get();
  return std::shared_ptr<const StagedAdapter>(
      p, [r = reclaimer_, s = std::move(staged)](const StagedAdapter*) mutable {
        r->post([s = std::move(s)]() mutable { s.reset(); });
      });
}

Result<AdapterCatalog::Resolved> AdapterCatalog::resolve(const std::string& id, AdapterSource source) const {
  Resolved r;
  r.name = id;
  if (source == AdapterSource::kName) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = names_.find(id);
      if (it != names_.end()) {
        r.source = it->second.source;
        r.path = it->second.path;
        r.base_model_name = it->second.base_model_name;
        r.remote = it->second.remote;
        r.registered = true;
        return r;
      }
    }
    if (valid_adapter_name(id)) {
      for (size_t i = 0; i < real_roots_.size(); ++i) {
        const std::string dir = real_roots_[i] + "/" + id;
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) continue;
        const std::string real = real_path(dir);
        LS_RETURN_IF_ERROR(check_contained(real, real_roots_[i], "adapter \"" + id + "\""));
        r.source = real_root_names_[i] + "/" + id;
        r.path = real;
        return r;
      }
    }
    LS_ASSIGN_OR_RETURN(const bool remote, resolve_remote_name(id, r));
    if (remote) return r;
    if (!is_hub_repo_id(id)) return not_found("adapter \"" + id + "\" not found");
    source = AdapterSource::kHub;
  }
  if (source == AdapterSource::kS3) {
    LS_ASSIGN_OR_RETURN(r.remote, s3_->contained(id));
    r.source = r.path = r.remote;
    return r;
  }
  if (source == AdapterSource::kHub) {
    if (!is_hub_repo_id(id)) return invalid_argument("\"" + id + "\" is not a Hub repo id (org/name[@revision])");
    LS_ASSIGN_OR_RETURN(std::string dir, resolve_hub_repo(id));
    r.source = id;
    r.path = real_path(dir);
    if (r.path.empty()) return not_found("adapter \"" + id + "\" not found in the Hub cache");
    return r;
  }
  // kLocal: a path inside one of the roots (relative paths are taken relative to each root).
  if (real_roots_.empty()) return invalid_argument("adapter_source local needs an --adapter-dir to look in");
  if (id.empty() || id.size() > 4096 || id.find('\0') != std::string::npos || id.find('%') != std::string::npos)
    return invalid_argument("invalid local adapter path");
  for (const std::string& root : real_roots_) {
    const std::string candidate = id[0] == '/' ? id : root + "/" + id;
    const std::string real = real_path(candidate);
    if (real.empty() || !inside(real, root)) continue;
    LS_RETURN_IF_ERROR(check_contained(real, root, "adapter path \"" + id + "\""));
    r.source = id;
    r.path = real;
    return r;
  }
  return invalid_argument("adapter path \"" + id + "\" is not inside an adapter directory");
}

// A name under an s3:// root: true with r filled, false when no root holds it (or it cannot name one).
Result<bool> AdapterCatalog::resolve_remote_name(const std::string& id, Resolved& r) const {
  if (!s3_->has_roots() || !valid_adapter_name(id)) return false;
  auto url = s3_->find(id);
  if (!url.is_ok()) {
    if (url.status().code() == ErrorCode::kNotFound) return false;
    return url.status().with_context("adapter \"" + id + "\"");
  }
  r.remote = r.source = r.path = url.value();
  return true;
}

bool AdapterCatalog::is_registered(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_.count(name) > 0;
}

bool AdapterCatalog::known(const std::string& id) const {
  auto r = resolve(id, AdapterSource::kName);
  // An object store that cannot be asked: let the request through to fail with the store's error.
  return r.is_ok() || r.status().code() == ErrorCode::kFailedDependency;
}

Result<std::shared_ptr<AdapterClaim::Entry>> AdapterCatalog::claim_resolved(const Resolved& r) {
  std::error_code ec;
  // Remote adapters are fetched and checked by the loader; while loaded they are served as loaded.
  if (r.remote.empty() && !std::filesystem::exists(r.path + "/adapter_config.json", ec))
    return not_found("adapter \"" + r.name + "\" has no adapter_config.json");
  const std::string fp = r.remote.empty() ? fingerprint(r.path) : "remote";
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(r.path);
  if (it != entries_.end() && it->second->fingerprint == fp &&
      it->second->state.load(std::memory_order_acquire) != AdapterClaim::Entry::kFailed) {
    it->second->last_used = now_seconds();
    return it->second;
  }
  auto e = std::make_shared<AdapterClaim::Entry>();
  e->name = r.name;
  e->source = r.source;
  e->path = r.path;
  e->base_model_name = r.base_model_name;
  e->remote = r.remote;
  e->fingerprint = fp;
  e->last_used = now_seconds();
  entries_[r.path] = e;
  queue_.push_back(e);
  cv_.notify_all();
  return e;
}

Result<std::shared_ptr<AdapterClaim>> AdapterCatalog::claim(const std::string& id, AdapterSource source) {
  LS_ASSIGN_OR_RETURN(Resolved r, resolve(id, source));
  LS_ASSIGN_OR_RETURN(auto entry, claim_resolved(r));
  return std::make_shared<AdapterClaim>(std::move(entry));
}

Status AdapterCatalog::register_name(const std::string& name, const std::string& source,
                                     const std::string& base_model_name, bool replace) {
  if (!valid_registered_name(name)) return invalid_argument("invalid adapter name \"" + name + "\"");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (names_.count(name) && !replace)
      return invalid_argument("The lora adapter '" + name + "' has already been loaded. If you want to load the "
                              "adapter in place, set 'load_inplace' to True.");
  }
  Resolved r;
  r.name = name;
  r.source = source;
  r.base_model_name = base_model_name;
  r.registered = true;
  if (is_s3_url(source)) {  // the management API is trusted with any bucket its credentials reach
    LS_ASSIGN_OR_RETURN(S3Location loc, parse_s3_url(source));
    if (loc.key.empty()) return invalid_argument("\"" + source + "\" names a bucket, not an adapter directory");
    r.remote = r.path = loc.url();
  } else {
    LS_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(source));
    r.path = real_path(dir);
    if (r.path.empty()) return not_found("adapter directory not found: " + source);
  }
  if (replace) {  // load_inplace: always a fresh load
    std::lock_guard<std::mutex> lock(mu_);
    entries_.erase(r.path);
  }
  LS_ASSIGN_OR_RETURN(auto entry, claim_resolved(r));
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return entry->state.load() != AdapterClaim::Entry::kLoading || stopping_; });
  if (entry->state.load() != AdapterClaim::Entry::kReady)
    return stopping_ ? unavailable("shutting down") : entry->error;
  names_[name] = {source, r.path, base_model_name, r.remote};
  return Status::ok();
}

Status AdapterCatalog::unregister(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = names_.find(name);
  if (it == names_.end()) return not_found("The lora adapter '" + name + "' cannot be found.");
  names_.erase(it);
  return Status::ok();
}

void AdapterCatalog::load_entry(const std::shared_ptr<AdapterClaim::Entry>& e) {
  const double t0 = now_seconds();
  auto adapter = std::make_shared<RegisteredAdapter>();
  adapter->path = e->path;
  std::unique_ptr<CacheLease> download;  // held until the files are read
  Status status = [&]() -> Status {
    if (!e->remote.empty()) {
      LS_ASSIGN_OR_RETURN(download, s3_->fetch(e->remote));
      adapter->path = download->dir();
    }
    // Every file is read once: the config here, the weights by the parser and, on a second thread at the
    // same time, by the hash. content_hash = sha256(sha256(config) || sha256 of the weights file).
    LS_ASSIGN_OR_RETURN(std::string config, read_file(adapter->path + "/adapter_config.json", size_t{1} << 20));
    const std::string weights = adapter->path + "/adapter_model.safetensors";
    auto hash = std::async(std::launch::async, [weights] { return sha256_of_files({weights}); });
    auto loaded = load_lora_adapter(adapter->path, model_, &config);
    auto digest = hash.get();
    if (!loaded.is_ok()) return loaded.status();
    adapter->weights = std::move(loaded).value();
    LS_ASSIGN_OR_RETURN(const std::string weights_hash, std::move(digest));
    adapter->content_hash = sha256_hex(sha256_hex(config) + weights_hash);
    adapter->rank = static_cast<int32_t>(adapter->weights.max_rank);
    if (options_.max_rank > 0 && adapter->rank > options_.max_rank)
      return invalid_argument("rank " + std::to_string(adapter->rank) + " is above the server's --max-lora-rank " +
                              std::to_string(options_.max_rank));
    note_modules(*adapter);
    if (options_.stage) {
      LS_ASSIGN_OR_RETURN(std::shared_ptr<const StagedAdapter> staged, options_.stage(adapter->weights));
      adapter->staged = reclaimed(std::move(staged));
      adapter->bytes = adapter->staged->memory.bytes();
      adapter->weights.layers = {};  // only the staged copy is read from here on
    }
    return Status::ok();
  }();
  // Downloaded files that do not load are not kept as good either.
  if (download && !status.is_ok()) s3_->discard(download->id());
  download.reset();
  adapter->name = e->name;
  adapter->source = e->source;
  adapter->base_model_name = e->base_model_name;
  adapter->load_seconds = now_seconds() - t0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.load_seconds.observe(adapter->load_seconds);
    if (status.is_ok()) {
      adapter->key = next_key_++;
      e->adapter = std::move(adapter);
      e->state.store(AdapterClaim::Entry::kReady, std::memory_order_release);
      ++stats_.loads;
      evict_locked();
    } else {
      e->error = status.with_context("adapter \"" + e->name + "\"");
      e->state.store(AdapterClaim::Entry::kFailed, std::memory_order_release);
      ++stats_.load_failures;
      auto it = entries_.find(e->path);
      if (it != entries_.end() && it->second == e) entries_.erase(it);  // not cached as good
    }
  }
  cv_.notify_all();
  if (on_change_) on_change_();
}

void AdapterCatalog::loader() {
  for (;;) {
    std::shared_ptr<AdapterClaim::Entry> e;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      e = std::move(queue_.front());
      queue_.pop_front();
    }
    load_entry(e);
  }
}

void AdapterCatalog::evict_locked() {
  auto totals = [this] {
    int32_t count = 0;
    int64_t bytes = 0;
    for (const auto& [path, e] : entries_)
      if (e->state.load() == AdapterClaim::Entry::kReady) {
        ++count;
        bytes += static_cast<int64_t>(e->adapter->bytes);
      }
    return std::pair{count, bytes};
  };
  for (;;) {
    auto [count, bytes] = totals();
    stats_.host_adapters = count;
    stats_.host_bytes = bytes;
    const bool over = (options_.max_cpu_loras > 0 && count > options_.max_cpu_loras) ||
                      (options_.max_cpu_bytes > 0 && bytes > options_.max_cpu_bytes);
    if (!over) return;
    // The least recently used adapter that no request holds (the map's reference is the only one).
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second->state.load() != AdapterClaim::Entry::kReady || it->second.use_count() > 1) continue;
      if (victim == entries_.end() || it->second->last_used < victim->second->last_used) victim = it;
    }
    if (victim == entries_.end()) return;  // everything in use: over budget until requests finish
    entries_.erase(victim);
    ++stats_.evictions;
  }
}

std::vector<AdapterListing> AdapterCatalog::list() const {
  std::map<std::string, AdapterListing> by_name;
  std::lock_guard<std::mutex> lock(mu_);
  auto fill = [](AdapterListing& l, const AdapterClaim::Entry& e) {
    const int state = e.state.load();
    l.state = state == AdapterClaim::Entry::kReady ? "host" : state == AdapterClaim::Entry::kLoading ? "loading" : "failed";
    l.last_used = e.last_used;
    if (state == AdapterClaim::Entry::kReady) {
      l.content_hash = e.adapter->content_hash;
      l.rank = e.adapter->rank;
      l.target_modules = e.adapter->target_modules;
      l.bytes = e.adapter->bytes;
      l.key = e.adapter->key;
    }
  };
  for (const auto& [name, rec] : names_) {
    AdapterListing& l = by_name[name];
    l.name = name;
    l.source = rec.source;
    l.path = rec.path;
    l.base_model_name = rec.base_model_name;
    l.registered = true;
    l.state = "disk";
    auto it = entries_.find(rec.path);
    if (it != entries_.end()) fill(l, *it->second);
  }
  for (size_t i = 0; i < real_roots_.size(); ++i) {
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator(real_roots_[i], ec)) {
      const std::string name = d.path().filename().string();
      if (!valid_adapter_name(name) || by_name.count(name)) continue;
      if (!std::filesystem::exists(d.path() / "adapter_config.json", ec)) continue;
      AdapterListing& l = by_name[name];
      l.name = name;
      l.source = real_root_names_[i] + "/" + name;
      l.path = real_path(d.path().string());
      l.state = "disk";
      auto it = entries_.find(l.path);
      if (it != entries_.end()) fill(l, *it->second);
    }
  }
  for (const auto& [path, e] : entries_) {
    bool listed = false;
    for (const auto& [name, l] : by_name) listed |= l.path == path;
    if (listed || by_name.count(e->name)) continue;
    AdapterListing& l = by_name[e->name];
    l.name = e->name;
    l.source = e->source;
    l.path = e->path;
    fill(l, *e);
  }
  std::vector<AdapterListing> out;
  for (auto& [name, l] : by_name) out.push_back(std::move(l));
  return out;
}

AdapterCatalogStats AdapterCatalog::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace ls
