// metrics_text.cpp: the Prometheus text writer and the metric table.
#include "server/metrics_text.h"

#include <charconv>
#include <cmath>
#include <vector>

namespace ls::server {
namespace {

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form, as Python prints
  std::string s(buf, ec == std::errc() ? end : buf);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

// label set text {a="x",b="y"} from pairs, escaping values.
using Labels = std::vector<std::pair<std::string, std::string>>;
std::string label_text(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape_label_value(labels[i].second) + "\"";
  }
  return out + "}";
}

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void header(const std::string& name, const char* type, const char* help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, const Labels& labels, double v) {
    out_ += name + label_text(labels) + " " + number(v) + "\n";
  }
  void gauge(const std::string& name, const char* help, const Labels& labels, double v) {
    header(name, "gauge", help);
    sample(name, labels, v);
  }
  // prometheus_client style: TYPE names the counter without _total; the sample has it.
  void counter(const std::string& name, const char* help, const Labels& labels, double v) {
    header(name, "counter", help);
    sample(name + "_total", labels, v);
  }
  void histogram_samples(const std::string& name, const Labels& labels, const Histogram& h) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h.bounds.size(); ++i) {
      cumulative += i < h.counts.size() ? h.counts[i] : 0;
      Labels with_le = labels;
      with_le.emplace_back("le", i < h.bounds.size() ? number(h.bounds[i]) : "+Inf");
      sample(name + "_bucket", with_le, static_cast<double>(cumulative));
    }
    sample(name + "_count", labels, static_cast<double>(h.count));
    sample(name + "_sum", labels, h.sum);
  }
  void histogram(const std::string& name, const char* help, const Labels& labels, const Histogram& h) {
    header(name, "histogram", help);
    histogram_samples(name, labels, h);
  }

 private:
  std::string& out_;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? "," : "") + names[i];
  return out;
}

void write_vllm(Writer& w, const EngineStats& s, const Labels& m) {
  w.gauge("vllm:num_requests_running", "Number of requests in model execution batches.", m, s.running);
  w.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", m, s.waiting);
  w.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", m, s.kv_usage());
  w.gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage (deprecated name).", m,
          s.kv_usage());
  Labels cache = m;
  cache.emplace_back("block_size", std::to_string(s.block_size));
  cache.emplace_back("num_gpu_blocks", std::to_string(s.kv_blocks_total));
  w.gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", cache, 1);
  w.counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", m,
            static_cast<double>(s.preemptions));
  w.counter("vllm:prompt_tokens", "Number of prefill tokens processed.", m, static_cast<double>(s.prompt_tokens));
  w.counter("vllm:generation_tokens", "Number of generation tokens processed.", m,
            static_cast<double>(s.generation_tokens));
  w.header("vllm:request_success", "counter", "Count of successfully processed requests.");
  for (const char* reason : {"stop", "length", "abort", "error"}) {
    Labels l = m;
    l.emplace_back("finished_reason", reason);
    auto it = s.finished.find(reason);
    w.sample("vllm:request_success_total", l, it == s.finished.end() ? 0.0 : static_cast<double>(it->second));
  }
  w.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", m, s.request_prompt_tokens);
  w.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", m,
              s.request_generation_tokens);
  w.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", m, s.iteration_tokens);
  w.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m, s.ttft);
  w.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m, s.itl);
  w.histogram("vllm:time_per_output_token_seconds",
              "Histogram of time per output token in seconds (deprecated name of inter_token_latency_seconds).", m,
              s.itl);
  w.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m, s.e2e);
  w.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", m, s.queue);
  w.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", m,
              s.inference);
  w.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", m,
              s.prefill);
  w.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", m,
              s.decode);
}

void write_adapters(Writer& w, const EngineStats& s, const Labels& m) {
  auto labels_of = [&](const std::string& name) {
    Labels l = m;
    l.emplace_back("adapter", name.empty() ? kBaseAdapterLabel : name);
    return l;
  };
  struct Series {
    const char* name;
    const char* help;
    double (*value)(const AdapterStats&);
  };
  const Series counters[] = {
      {"loraserve:adapter_requests", "Finished requests per adapter.",
       [](const AdapterStats& a) { return static_cast<double>(a.requests); }},
      {"loraserve:adapter_prompt_tokens", "Prompt tokens processed per adapter.",
       [](const AdapterStats& a) { return static_cast<double>(a.prompt_tokens); }},
      {"loraserve:adapter_generation_tokens", "Tokens generated per adapter.",
       [](const AdapterStats& a) { return static_cast<double>(a.generation_tokens); }},
  };
  for (const Series& c : counters) {
    w.header(c.name, "counter", c.help);
    for (const auto& [name, a] : s.adapters) w.sample(std::string(c.name) + "_total", labels_of(name), c.value(a));
  }
  const Series gauges[] = {
      {"loraserve:adapter_requests_running", "Running requests per adapter.",
       [](const AdapterStats& a) { return static_cast<double>(a.running); }},
      {"loraserve:adapter_requests_waiting", "Waiting requests per adapter.",
       [](const AdapterStats& a) { return static_cast<double>(a.waiting); }},
  };
  for (const Series& g : gauges) {
    w.header(g.name, "gauge", g.help);
    for (const auto& [name, a] : s.adapters) w.sample(g.name, labels_of(name), g.value(a));
  }
  struct HistogramSeries {
    const char* name;
    const char* help;
    const Histogram AdapterStats::*member;
  };
  const HistogramSeries histograms[] = {
      {"loraserve:adapter_time_to_first_token_seconds", "Time to first token per adapter.", &AdapterStats::ttft},
      {"loraserve:adapter_inter_token_latency_seconds", "Inter-token latency per adapter.", &AdapterStats::itl},
      {"loraserve:adapter_e2e_request_latency_seconds", "End-to-end request latency per adapter.",
       &AdapterStats::e2e},
  };
  for (const HistogramSeries& h : histograms) {
    w.header(h.name, "histogram", h.help);
    for (const auto& [name, a] : s.adapters) w.histogram_samples(h.name, labels_of(name), a.*h.member);
  }
}

}  // namespace

void ServerCounters::failure(const std::string& err) {
  std::lock_guard<std::mutex> lock(mu_);
  ++failures_[err];
}

std::map<std::string, uint64_t> ServerCounters::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

std::string render_adapter_tiers(const std::vector<AdapterInfo>& adapters, const std::string& model_name) {
  std::string out;
  Writer w(out);
  std::map<std::string, int64_t> counts = {{"disk", 0}, {"loading", 0}, {"host", 0}, {"device", 0}, {"failed", 0}};
  w.header("loraserve:adapter_tier", "gauge", "Where each known adapter sits (1 for its tier).");
  for (const AdapterInfo& a : adapters) {
    ++counts[a.tier];
    w.sample("loraserve:adapter_tier", {{"model_name", model_name}, {"adapter", a.name}, {"tier", a.tier}}, 1);
  }
  w.header("loraserve:adapters", "gauge", "Known adapters by tier.");
  for (const auto& [tier, n] : counts)
    w.sample("loraserve:adapters", {{"model_name", model_name}, {"tier", tier}}, static_cast<double>(n));
  return out;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string render_metrics(const EngineStats& s, const std::string& model_name, const ServerCounters& counters,
                           double unix_now) {
  std::string out;
  Writer w(out);
  const Labels m = {{"engine", "0"}, {"model_name", model_name}};
  write_vllm(w, s, m);
  w.gauge("vllm:lora_requests_info", "Running stats on lora requests.",
          {{"max_lora", std::to_string(s.max_loras)},
           {"running_lora_adapters", join(s.running_adapters)},
           {"waiting_lora_adapters", join(s.waiting_adapters)}},
          unix_now);
  write_adapters(w, s, m);
  w.counter("loraserve:adapter_loads", "Adapters loaded into host memory.", m, static_cast<double>(s.adapter_loads));
  w.counter("loraserve:adapter_load_failures", "Adapter loads that failed.", m,
            static_cast<double>(s.adapter_load_failures));
  w.counter("loraserve:adapter_evictions", "Adapters evicted from host memory.", m,
            static_cast<double>(s.adapter_evictions));
  w.counter("loraserve:adapter_slot_loads", "Adapters copied into device slots.", m,
            static_cast<double>(s.adapter_slot_loads));
  w.counter("loraserve:adapter_slot_loads_done", "Device slot loads that landed.", m,
            static_cast<double>(s.adapter_slot_loads_done));
  w.counter("loraserve:adapter_slot_load_seconds",
            "Summed seconds from a device slot load's start to the step that saw it land (what its request waited).",
            m, s.adapter_slot_load_seconds);
  w.gauge("loraserve:adapter_slot_load_max_seconds", "The longest device slot load so far.", m,
          s.adapter_slot_load_max_seconds);
  w.histogram("loraserve:adapter_slot_wait_seconds",
              "Per request that waited for it: seconds it was next in line, with a seat free, waiting only for its "
              "adapter's copy to the device.",
              m, s.adapter_slot_wait_seconds);
  w.gauge("loraserve:adapter_slot_wait_max_seconds", "The longest such wait so far.", m,
          s.adapter_slot_wait_max_seconds);
  w.histogram("loraserve:adapter_load_seconds", "Time to load an adapter into host memory.", m,
              s.adapter_load_seconds);
  w.gauge("loraserve:host_adapters", "Adapters in host memory.", m, s.host_adapters);
  w.gauge("loraserve:host_adapter_bytes", "Host bytes of adapter weights.", m, static_cast<double>(s.host_adapter_bytes));
  w.counter("loraserve:engine_steps", "Forward passes run by the engine.", m, static_cast<double>(s.steps));
  w.counter("loraserve:decode_steps", "Decode-only forward passes.", m, static_cast<double>(s.decode_steps));
  w.counter("loraserve:decode_step_seconds", "Summed wall time of decode-only steps.", m, s.decode_step_seconds);
  w.gauge("loraserve:kv_blocks_total", "KV cache blocks in the pool.", m, static_cast<double>(s.kv_blocks_total));
  w.gauge("loraserve:kv_blocks_used", "KV cache blocks in use.", m, static_cast<double>(s.kv_blocks_used));
  // TGI's names, for dashboards built on them (metrics-rs style: no _total suffix).
  w.header("tgi_request_count", "counter", "Requests received by the generation routes.");
  w.sample("tgi_request_count", {}, static_cast<double>(counters.requests()));
  w.header("tgi_request_success", "counter", "Generation requests that succeeded.");
  w.sample("tgi_request_success", {}, static_cast<double>(counters.successes()));
  w.header("tgi_request_failure", "counter", "Generation requests that failed, by error type.");
  const auto failures = counters.failures();
  for (const char* err : {"validation", "generation", "overloaded", "incomplete", "template", "dropped"}) {
    auto it = failures.find(err);
    w.sample("tgi_request_failure", {{"err", err}}, it == failures.end() ? 0.0 : static_cast<double>(it->second));
  }
  w.gauge("tgi_queue_size", "Requests waiting to be scheduled.", {}, s.waiting);
  w.gauge("tgi_batch_current_size", "Requests in the running batch.", {}, s.running);
  return out;
}

}  // namespace ls::server
