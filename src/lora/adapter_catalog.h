// adapter_catalog.h: AdapterCatalog, every adapter a server can serve and the host tier that holds them.
//
// Sources: names registered at start-up or through the management API (a directory or a Hub id each),
// subdirectories of the --adapter-dir roots found by name on first use (vLLM's filesystem resolver, Ray Serve
// LLM's dynamic_lora_loading_path), Hub ids ("org/name[@revision]") in the local Hub cache, LoRAX's
// adapter_source "local" paths, which must lie inside a root, and object storage: s3:// roots, LoRAX's
// adapter_source "s3" URLs inside them, s3:// paths registered by name (lora/s3_adapter_source.h; the loader
// thread downloads into the size-capped download cache, then loads from there). A name or path from a request never reaches
// outside the roots: names are single path components of safe bytes, and every directory and file is
// resolved (symlinks followed) and checked to lie inside its root before anything is opened.
//
// Host tier: loads (read, validate, convert, hash) run on loader threads; a request claims its adapter
// (AdapterClaim) and waits while it loads; concurrent first requests share one load. Loaded adapters stay in
// host memory in LRU order within --max-cpu-loras / a byte budget; an adapter some claim holds is never
// evicted. Identity follows content: each request re-checks the files' fingerprint (device, inode, size, mtime,
// ctime), and changed files mean a new load with a new key (RegisteredAdapter::key), so requests already
// running finish on what they started with and nothing keyed by the old load (device slots) serves the new
// one. A failed load is reported to its requests and not kept. Thread-safe.
//
// Staging: with AdapterCatalogOptions::stage (the engine's LoraSlots::stage), a loader also turns the adapter
// into the host buffer a device slot load copies from (pinned, in compute dtype) and then drops the float32
// weights, which nothing else reads: the host tier holds, and counts in its bytes, the staged copy alone. The
// staged copy is shared (a slot keeps it while its copy is in flight, even if the host tier evicts the adapter),
// and whoever drops its last reference, it is freed on the catalog's reclaimer thread, never on the caller's:
// freeing pinned memory (cudaFreeHost) may wait for the device, which must not stall the engine thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/histogram.h"
#include "core/serial_worker.h"
#include "io/model_config.h"
#include "lora/lora_adapter.h"
#include "lora/s3_adapter_source.h"

namespace ls {

struct StagedAdapter;  // lora/lora_slots.h

// One loaded adapter. Immutable; shared by every request that uses this load.
struct RegisteredAdapter {
  uint64_t key = 0;             // unique per load (never reused): what device slots are keyed by
  std::string name;             // the name it was requested or registered under
  std::string source;           // what named it: a path, a Hub id, or "ROOT/NAME"
  std::string path;             // the resolved directory
  std::string base_model_name;  // vLLM's parent ("" = the base's first served name)
  std::string content_hash;     // sha256(sha256(adapter_config.json) || sha256(adapter_model.safetensors))
  LoraAdapter weights;          // float32, scales folded into B; layers emptied once staged
  std::shared_ptr<const StagedAdapter> staged;  // for LoraSlots::begin_load (null: the catalog has no stage)
  int32_t rank = 0;             // the largest rank of any module
  std::vector<std::string> target_modules;  // adapted projection names
  size_t bytes = 0;             // host bytes: the staged copy, or float32 A and B when not staged
  double load_seconds = 0;
};

// How a request names its adapter: by name (registered, under a root, or a Hub id), LoRAX's "local" (a path
// inside a root), "hub" (a Hub id in the local cache) or "s3" (an s3:// URL inside an s3:// root).
enum class AdapterSource { kName, kLocal, kHub, kS3 };
// "", "local", "hub", "s3" (case-insensitive)
Result<AdapterSource> parse_adapter_source(const std::string& source);

// Whether a string can name an adapter found under a root: one path component of 1-255 printable ASCII
// bytes, without '/', '\\', '%', whitespace or NUL, not "." or "..".
bool valid_adapter_name(const std::string& name);

struct AdapterCatalogOptions {
  std::vector<std::string> roots;  // --adapter-dir: directories and s3://bucket/prefix URLs
  int32_t max_cpu_loras = 0;       // adapters in host memory (0: no limit)
  int64_t max_cpu_bytes = 0;       // host bytes of adapter weights (0: no limit)
  int32_t max_rank = 0;            // larger ranks are refused (0: any)
  int32_t loader_threads = 4;     // loads at once (a slow one must not hold up the rest)
  RemoteAdapterOptions remote;    // object storage: endpoint, credentials, download cache
  // Stages a loaded adapter for device slot loads (LoraSlots::stage), on a loader thread; its failure fails the
  // load. Empty: adapters stay in float32 and are not staged.
  std::function<Result<std::shared_ptr<const StagedAdapter>>(const LoraAdapter&)> stage;
};

class AdapterCatalog;

// A request's hold on an adapter: pins it in host memory while alive.
class AdapterClaim {
 public:
  struct Entry;
  explicit AdapterClaim(std::shared_ptr<Entry> entry) : entry_(std::move(entry)) {}
  bool ready() const;
  bool failed() const;
  Status error() const;
  // The loaded adapter (null until ready).
  std::shared_ptr<const RegisteredAdapter> adapter() const;
  const std::string& name() const;

 private:
  std::shared_ptr<Entry> entry_;
};

struct AdapterListing {
  std::string name, source, path, base_model_name, content_hash;
  std::string state;  // "disk" (known, not loaded), "loading", "host", "failed"
  int32_t rank = 0;
  std::vector<std::string> target_modules;
  size_t bytes = 0;
  uint64_t key = 0;       // of the current load (0: none)
  bool registered = false;
  double last_used = 0;
};

struct AdapterCatalogStats {
  uint64_t loads = 0, load_failures = 0, evictions = 0;
  Histogram load_seconds{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  int32_t host_adapters = 0;
  int64_t host_bytes = 0;
};

class AdapterCatalog {
 public:
  // on_change runs (on a loader thread) whenever a load finishes, so the engine can wake.
  AdapterCatalog(ModelConfig model, AdapterCatalogOptions options, std::function<void()> on_change = {});
  ~AdapterCatalog();
  AdapterCatalog(const AdapterCatalog&) = delete;
  AdapterCatalog& operator=(const AdapterCatalog&) = delete;

  const AdapterCatalogOptions& options() const { return options_; }
  // Registers `name` for `source` (a directory, or a Hub id in the local cache) and loads it now, returning
  // the load's status. A name already registered fails with kInvalidArgument unless `replace`.
  Status register_name(const std::string& name, const std::string& source, const std::string& base_model_name,
                       bool replace);
  // Forgets a registered name (kNotFound if it is not one). Requests holding it finish with it.
  Status unregister(const std::string& name);
  bool is_registered(const std::string& name) const;
  // Whether a request for `id` by name would find something (a registered name, a root subdirectory, a Hub
  // id in the cache) without loading it.
  bool known(const std::string& id) const;

  // Resolves what a request names and claims it, starting a load when it is not in host memory. Fails at
  // once for names and paths that resolve to nothing (kNotFound) or are not allowed (kInvalidArgument).
  Result<std::shared_ptr<AdapterClaim>> claim(const std::string& id, AdapterSource source);

  // Registered names, everything in host memory, and every subdirectory of the roots.
  std::vector<AdapterListing> list() const;
  AdapterCatalogStats stats() const;

 private:
  struct Resolved {
    std::string name, source, path, base_model_name;
    std::string remote;  // an s3:// URL to fetch first ("" : path is the local directory)
    bool registered = false;
  };
  Result<bool> resolve_remote_name(const std::string& id, Resolved& r) const;
  Result<Resolved> resolve(const std::string& id, AdapterSource source) const;
  Result<std::shared_ptr<AdapterClaim::Entry>> claim_resolved(const Resolved& r);
  void loader();
  void load_entry(const std::shared_ptr<AdapterClaim::Entry>& e);
  void evict_locked();
  // Wraps a staged copy so that its memory is freed on the reclaimer thread.
  std::shared_ptr<const StagedAdapter> reclaimed(std::shared_ptr<const StagedAdapter> staged);

  ModelConfig model_;
  AdapterCatalogOptions options_;
  std::vector<std::string> real_roots_;
  std::vector<std::string> real_root_names_;  // the --adapter-dir spelling of each real_roots_ entry
  std::unique_ptr<S3AdapterSource> s3_;
  std::function<void()> on_change_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  struct NameRecord {
    std::string source, path, base_model_name, remote;
  };
  std::map<std::string, NameRecord> names_;                                  // registered names
  std::map<std::string, std::shared_ptr<AdapterClaim::Entry>> entries_;      // by resolved directory or URL
  std::deque<std::shared_ptr<AdapterClaim::Entry>> queue_;                   // loads to run
  std::vector<std::thread> loaders_;
  std::shared_ptr<SerialWorker> reclaimer_;  // shared with the deleters of staged copies, which may outlive us
  bool stopping_ = false;
  uint64_t next_key_ = 1;
  AdapterCatalogStats stats_;
};

}  // namespace ls
