// metrics_text.h: GET /metrics, Prometheus text exposition of an EngineStats snapshot under vLLM's names
// (interfaces.md 7.1; deprecated aliases too, since dashboards still scrape them), per-adapter series that no
// peer has (label `adapter`; the base model is "__base_model__", LoRAX's id for it), and TGI's request counters
// (7.2) that the HTTP side counts in ServerCounters.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "engine/engine.h"
#include "engine/metrics.h"

namespace ls::server {

// The base model's name in per-adapter series (LoRAX's adapter id for it).
inline constexpr const char* kBaseAdapterLabel = "__base_model__";

// Counted by the routes: TGI's tgi_request_count / _success / _failure{err}.
class ServerCounters {
 public:
  void request() { requests_.fetch_add(1, std::memory_order_relaxed); }
  void success() { successes_.fetch_add(1, std::memory_order_relaxed); }
  // err: "validation", "generation", "overloaded", "incomplete", "template", "dropped"
  void failure(const std::string& err);
  uint64_t requests() const { return requests_.load(); }
  uint64_t successes() const { return successes_.load(); }
  std::map<std::string, uint64_t> failures() const;

 private:
  std::atomic<uint64_t> requests_{0}, successes_{0};
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> failures_;
};

// The whole /metrics body. unix_now: the value of vllm:lora_requests_info (vLLM sets it to the current time).
std::string render_metrics(const EngineStats& stats, const std::string& model_name, const ServerCounters& counters,
                           double unix_now);

// Where each known adapter sits: loraserve:adapter_tier{adapter, tier} = 1 per adapter, and
// loraserve:adapters{tier} counts (disk, loading, host, device, failed).
std::string render_adapter_tiers(const std::vector<AdapterInfo>& adapters, const std::string& model_name);

// A label value escaped for the exposition format (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

}  // namespace ls::server
