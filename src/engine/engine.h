// engine.h: Engine, the serving engine. One engine thread owns the scheduler, the KV block pool and the
// adapter slots; other threads reach it only through submit() (an inbox queue) and the RequestStream of each
// request. Each step the thread drains the inbox, schedules under a token budget (decodes of running requests
// first, then chunks of waiting prompts; continuous batching, chunked prefill, preemption by recompute when KV
// blocks run out), runs the step through the ModelRunner (pack, forward eagerly or by graph, sample on the
// device), then per request appends tokens, detokenizes, checks stops and pushes an update. At most one step is
// in flight; while it runs, the thread polls it (Backend::ops_done) and meanwhile takes arrivals and begins the
// slot copies of waiting requests (Scheduler::prefetch), so a copy can land before the next step is built.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/metrics.h"
#include "engine/request.h"
#include "engine/request_stream.h"
#include "engine/served_model.h"
#include "lora/adapter_catalog.h"

namespace ls {

struct EngineOptions {
  int32_t max_num_seqs = 256;             // sequences in one step
  int32_t max_num_batched_tokens = 0;     // tokens in one step (0: 2048, and at least max_num_seqs)
  int32_t max_loras = 4;                  // distinct adapters in one step (device adapter slots)
  int32_t max_lora_rank = 0;              // adapters of a larger rank are refused (0: any rank); the device
                                          // LoRA memory holds max_loras x max_lora_rank rank rows (0: x 256)
  int32_t max_model_len = 0;              // prompt + output tokens per request (0: the model's
                                          //  max_position_embeddings, lowered to what the KV pool holds)
  int32_t block_size = 16;                // tokens per KV block
  int64_t kv_cache_bytes = 0;             // KV pool size (0: cpu 25% of RAM up to 4 GiB; cuda from
                                          //  gpu_memory_utilization)
  double gpu_memory_utilization = 0.9;    // cuda: fraction of device memory the process may use in all
  int32_t max_queued_requests = 4096;     // waiting requests beyond this are refused (kResourceExhausted)
  bool cuda_graphs = true;                // replay decode steps from graphs where the backend records them
  // Adapters (lora/adapter_catalog.h): roots searched by name on first use, and the host tier's budget.
  std::vector<std::string> adapter_dirs;
  int32_t max_cpu_loras = 0;              // adapters kept in host memory (0: no limit)
  int64_t max_cpu_lora_bytes = 0;         // host bytes of adapter weights (0: no limit)
  RemoteAdapterOptions remote_adapters;   // s3:// roots: endpoint, credentials, download cache
};

// What the engine settled on at start-up.
struct EngineLimits {
  int32_t max_model_len = 0;
  int32_t max_num_seqs = 0;
  int32_t max_num_batched_tokens = 0;
  int32_t max_loras = 0;
  int32_t block_size = 0;
  int32_t num_kv_blocks = 0;
  int64_t kv_tokens() const { return static_cast<int64_t>(num_kv_blocks) * block_size; }
  int64_t kv_bytes = 0;
};

struct AdapterInfo {
  std::string name;
  std::string path;             // the resolved directory
  std::string source;           // what named it: a path, a Hub id, or ROOT/NAME
  std::string base_model_name;  // vLLM's `parent` ("" = the base's first served name)
  std::string content_hash;     // sha256 of adapter_config.json and the weights file ("" until loaded)
  int32_t rank = 0;             // the largest rank of any module (0 until loaded)
  std::vector<std::string> target_modules;  // adapted projections ("q_proj", ...)
  size_t bytes = 0;             // host memory of its weights
  std::string tier;             // "disk", "loading", "host", "device" (resident in a slot) or "failed"
  bool registered = false;      // named at start-up or through the management API (vs. found under a root)
  uint64_t requests = 0;        // requests finished with it
  double last_used = 0;         // engine_clock_seconds() of its last use (0: never)
};

// Room for more adapters and tokens (GET /v1/capacity).
struct EngineCapacity {
  int32_t rank = 0;                 // the rank asked about
  int64_t adapter_bytes = 0;        // host bytes of one all-projection adapter of that rank
  int64_t host_adapters_free = -1;  // more such adapters the host budget holds (-1: no limit)
  int64_t host_bytes_used = 0, host_bytes_limit = 0;  // limit 0: none
  int32_t device_slots = 0, device_slots_free = 0;     // slots no running request holds
  int64_t device_rank_rows = 0, device_rank_rows_free = 0;  // LoRA rank rows shared by the slots; not held
  int64_t device_adapters_free = 0;  // more adapters of that rank the device takes now (free slots and rows)
  int64_t kv_tokens_total = 0, kv_tokens_free = 0;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(ServedModel& model, const EngineOptions& options);
  ~Engine();  // shutdown(0) if still running
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineLimits& limits() const { return limits_; }
  ServedModel& model() const { return *model_; }

  // Loads and validates an adapter against the base (host memory) and registers it under `name`; fails with
  // the reason (kNotFound, kInvalidArgument, kUnsupported, kCorrupt). `replace`: load again over a registered
  // name (vLLM's load_inplace); without it a registered name is refused. Thread-safe.
  Status add_adapter(const std::string& name, const std::string& source, const std::string& base_model_name = "",
                     bool replace = false);
  // Forgets a registered name: requests using it finish, new ones get kNotFound.
  Status remove_adapter(const std::string& name);
  // Whether a request for `name` would find an adapter (registered, under a root, or a Hub id in the cache).
  bool has_adapter(const std::string& name) const;
  std::vector<AdapterInfo> adapters() const;
  EngineCapacity capacity(int32_t rank) const;

  // Starts the engine thread.
  void start();
  // Queues a request; the stream receives its updates (`notify` as in RequestStream::set_notify). Fails
  // without queuing: kInvalidArgument (empty prompt, ids outside the vocabulary, prompt + max_new_tokens over
  // max_model_len), kNotFound (unknown adapter), kResourceExhausted (queue full), kUnavailable (shutting down).
  Result<std::shared_ptr<RequestStream>> submit(EngineRequest request, std::function<void()> notify = {});
  // Stops admitting new requests, lets queued and running ones finish for up to grace_seconds, aborts the rest
  // (their streams get a kAbort update), and joins the engine thread. Idempotent.
  void shutdown(double grace_seconds);
  bool accepting() const;

  // A consistent copy of the counters (thread-safe; cheap enough for every /metrics scrape).
  EngineStats stats() const;

 private:
  struct Impl;
  explicit Engine(ServedModel& model);
  ServedModel* model_;
  EngineLimits limits_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ls
