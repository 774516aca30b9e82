// metrics.h: the engine's counters and histograms (EngineStats), counted on the engine thread and copied out
// as a snapshot for /metrics. Histogram bucket edges are vLLM's, so dashboards built for vLLM read ours.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/histogram.h"

namespace ls {

// vLLM's bucket edges.
std::vector<double> ttft_buckets();           // time_to_first_token_seconds
std::vector<double> itl_buckets();            // inter_token_latency_seconds, time_per_output_token_seconds
std::vector<double> request_time_buckets();   // e2e, queue, inference, prefill, decode seconds
std::vector<double> token_count_buckets(int64_t max_model_len);  // 1-2-5 steps up to max_model_len
std::vector<double> iteration_token_buckets();
std::vector<double> adapter_slot_wait_buckets();  // ours: 0.5 ms to 1 s

// Per adapter ("" is the base model).
struct AdapterStats {
  uint64_t requests = 0;              // finished requests
  uint64_t prompt_tokens = 0, generation_tokens = 0;
  int32_t running = 0, waiting = 0;   // now
  Histogram ttft{ttft_buckets()}, itl{itl_buckets()}, e2e{request_time_buckets()};
};

struct EngineStats {
  int32_t running = 0, waiting = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  int32_t block_size = 0;
  double kv_usage() const { return kv_blocks_total ? static_cast<double>(kv_blocks_used) / kv_blocks_total : 0.0; }
  uint64_t prompt_tokens = 0, generation_tokens = 0, preemptions = 0;
  std::map<std::string, uint64_t> finished;  // by reason: "stop", "length", "abort", "error"
  Histogram ttft{ttft_buckets()}, itl{itl_buckets()}, e2e{request_time_buckets()}, queue{request_time_buckets()},
      inference{request_time_buckets()}, prefill{request_time_buckets()}, decode{request_time_buckets()};
  Histogram request_prompt_tokens, request_generation_tokens, iteration_tokens{iteration_token_buckets()};
  int32_t max_loras = 0;
  std::vector<std::string> running_adapters, waiting_adapters;  // names with running / waiting requests
  std::map<std::string, AdapterStats> adapters;                 // every adapter that has seen a request
  // Adapter loads (lora/adapter_catalog.h) and device slot loads.
  uint64_t adapter_loads = 0, adapter_load_failures = 0, adapter_evictions = 0, adapter_slot_loads = 0;
  Histogram adapter_load_seconds;
  // Device slot loads that landed, and their seconds from the slot's acquire to the step that found the copy
  // done (what an adapter request waits for its copy; other requests never wait): summed and the largest.
  uint64_t adapter_slot_loads_done = 0;
  double adapter_slot_load_seconds = 0, adapter_slot_load_max_seconds = 0;
  // What the copies exposed to their requests: per sequence admitted after waiting, next in line with a seat,
  // budget and KV blocks free, for its slot's copy alone, those seconds (Scheduler::slot_waits); the longest.
  Histogram adapter_slot_wait_seconds{adapter_slot_wait_buckets()};
  double adapter_slot_wait_max_seconds = 0;
  int32_t host_adapters = 0;
  int64_t host_adapter_bytes = 0;
  uint64_t steps = 0;                  // forward passes run
  uint64_t decode_steps = 0;           // of which decode-only (every sequence one token)
  double decode_step_seconds = 0;      // summed wall time of those (host-side, sampling included)
};

}  // namespace ls
