// metrics_text_test.cpp: the /metrics body from a fabricated EngineStats: every line is valid Prometheus text
// exposition, each sample's family is declared (# TYPE) before it, histogram buckets are cumulative and end
// at +Inf = _count, and the names users scrape (vLLM's current and deprecated ones, lora_requests_info with
// the current time as its value, per-adapter series, TGI's counters) carry the right values.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "server/metrics_text.h"

namespace ls::server {
namespace {

EngineStats sample_stats() {
  EngineStats s;
  s.running = 3;
  s.waiting = 2;
  s.kv_blocks_total = 100;
  s.kv_blocks_used = 25;
  s.block_size = 16;
  s.prompt_tokens = 1234;
  s.generation_tokens = 567;
  s.preemptions = 4;
  s.finished["stop"] = 7;
  s.finished["length"] = 2;
  s.max_loras = 4;
  s.running_adapters = {"calc", "sql"};
  s.waiting_adapters = {"up\"per"};
  s.request_prompt_tokens = Histogram(token_count_buckets(2048));
  s.request_generation_tokens = Histogram(token_count_buckets(2048));
  for (double v : {0.004, 0.03, 0.2, 50.0, 5000.0}) s.ttft.observe(v);
  s.itl.observe(0.02);
  s.e2e.observe(1.2);
  AdapterStats& base = s.adapters[""];
  base.requests = 5;
  base.ttft.observe(0.01);
  AdapterStats& calc = s.adapters["calc"];
  calc.requests = 2;
  calc.prompt_tokens = 40;
  calc.generation_tokens = 9;
  calc.running = 1;
  calc.itl.observe(0.05);
  s.adapter_slot_loads = 6;
  s.adapter_slot_loads_done = 5;
  s.adapter_slot_load_seconds = 0.0125;
  s.adapter_slot_load_max_seconds = 0.004;
  s.adapter_slot_wait_seconds.observe(0.003);
  s.adapter_slot_wait_seconds.observe(0.0015);
  s.adapter_slot_wait_max_seconds = 0.003;
  return s;
}

std::map<std::string, double> samples_of(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

TEST(MetricsText, EveryLineIsValidExposition) {
  ServerCounters counters;
  const std::string text = render_metrics(sample_stats(), "demo", counters, 1.7e9);
  const std::regex help(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$)");
  const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? ([-+]?([0-9.eE+-]+|Inf|NaN))$)");
  std::set<std::string> declared;
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, type)) {
      EXPECT_TRUE(declared.insert(m[1]).second) << "declared twice: " << line;
      continue;
    }
    if (std::regex_match(line, help)) continue;
    ASSERT_TRUE(std::regex_match(line, m, sample)) << "not valid exposition: " << line;
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_count", "_sum", "_total"}) {
      const std::string s(suffix);
      if (!declared.count(family) && family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0)
        family = family.substr(0, family.size() - s.size());
    }
    EXPECT_TRUE(declared.count(family)) << "sample before its # TYPE: " << line;
  }
  EXPECT_GT(n, 200u);
}

TEST(MetricsText, ValuesUnderVllmNames) {
  ServerCounters counters;
  counters.request();
  counters.request();
  counters.success();
  counters.failure("validation");
  const auto s = samples_of(render_metrics(sample_stats(), "demo", counters, 1.7e9));
  const std::string m = "{engine=\"0\",model_name=\"demo\"}";
  EXPECT_EQ(s.at("vllm:num_requests_running" + m), 3);
  EXPECT_EQ(s.at("vllm:num_requests_waiting" + m), 2);
  EXPECT_EQ(s.at("vllm:kv_cache_usage_perc" + m), 0.25);
  EXPECT_EQ(s.at("vllm:gpu_cache_usage_perc" + m), 0.25);
  EXPECT_EQ(s.at("vllm:prompt_tokens_total" + m), 1234);
  EXPECT_EQ(s.at("vllm:generation_tokens_total" + m), 567);
  EXPECT_EQ(s.at("vllm:num_preemptions_total" + m), 4);
  EXPECT_EQ(s.at("vllm:request_success_total{engine=\"0\",model_name=\"demo\",finished_reason=\"stop\"}"), 7);
  EXPECT_EQ(s.at("vllm:request_success_total{engine=\"0\",model_name=\"demo\",finished_reason=\"abort\"}"), 0);
  EXPECT_EQ(s.at("vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"calc,sql\","
                 "waiting_lora_adapters=\"up\\\"per\"}"),
            1.7e9);
  // TTFT: 0.004 <= 0.005, 0.03 <= 0.04, 0.2 <= 0.25, 50 <= 80, 5000 only in +Inf.
  const std::string ttft = "vllm:time_to_first_token_seconds_bucket{engine=\"0\",model_name=\"demo\",le=";
  EXPECT_EQ(s.at(ttft + "\"0.001\"}"), 0);
  EXPECT_EQ(s.at(ttft + "\"0.005\"}"), 1);
  EXPECT_EQ(s.at(ttft + "\"0.04\"}"), 2);
  EXPECT_EQ(s.at(ttft + "\"0.25\"}"), 3);
  EXPECT_EQ(s.at(ttft + "\"80.0\"}"), 4);
  EXPECT_EQ(s.at(ttft + "\"2560.0\"}"), 4);
  EXPECT_EQ(s.at(ttft + "\"+Inf\"}"), 5);
  EXPECT_EQ(s.at("vllm:time_to_first_token_seconds_count" + m), 5);
  EXPECT_NEAR(s.at("vllm:time_to_first_token_seconds_sum" + m), 5050.234, 1e-9);
  EXPECT_EQ(s.at("vllm:inter_token_latency_seconds_count" + m), 1);
  EXPECT_EQ(s.at("vllm:time_per_output_token_seconds_count" + m), 1);
  EXPECT_EQ(s.at("vllm:e2e_request_latency_seconds_count" + m), 1);
  // Per adapter; the base model is __base_model__.
  const std::string calc = "{engine=\"0\",model_name=\"demo\",adapter=\"calc\"}";
  EXPECT_EQ(s.at("loraserve:adapter_requests_total" + calc), 2);
  EXPECT_EQ(s.at("loraserve:adapter_prompt_tokens_total" + calc), 40);
  EXPECT_EQ(s.at("loraserve:adapter_generation_tokens_total" + calc), 9);
  EXPECT_EQ(s.at("loraserve:adapter_requests_running" + calc), 1);
  EXPECT_EQ(s.at("loraserve:adapter_inter_token_latency_seconds_count" + calc), 1);
  EXPECT_EQ(s.at("loraserve:adapter_requests_total{engine=\"0\",model_name=\"demo\",adapter=\"__base_model__\"}"), 5);
  // Device slot loads and what their requests waited for them.
  EXPECT_EQ(s.at("loraserve:adapter_slot_loads_total" + m), 6);
  EXPECT_EQ(s.at("loraserve:adapter_slot_loads_done_total" + m), 5);
  EXPECT_EQ(s.at("loraserve:adapter_slot_load_seconds_total" + m), 0.0125);
  EXPECT_EQ(s.at("loraserve:adapter_slot_load_max_seconds" + m), 0.004);
  // What the copies exposed: two requests waited for theirs, 4.5 ms in all, one 1.5 ms (under 2 ms).
  EXPECT_EQ(s.at("loraserve:adapter_slot_wait_seconds_count" + m), 2);
  EXPECT_NEAR(s.at("loraserve:adapter_slot_wait_seconds_sum" + m), 0.0045, 1e-12);
  EXPECT_EQ(s.at("loraserve:adapter_slot_wait_seconds_bucket{engine=\"0\",model_name=\"demo\",le=\"0.002\"}"), 1);
  EXPECT_EQ(s.at("loraserve:adapter_slot_wait_max_seconds" + m), 0.003);
  // TGI.
  EXPECT_EQ(s.at("tgi_request_count"), 2);
  EXPECT_EQ(s.at("tgi_request_success"), 1);
  EXPECT_EQ(s.at("tgi_request_failure{err=\"validation\"}"), 1);
  EXPECT_EQ(s.at("tgi_queue_size"), 2);
  EXPECT_EQ(s.at("tgi_batch_current_size"), 3);
}

TEST(MetricsText, BucketsAreCumulative) {
  ServerCounters counters;
  const std::string text = render_metrics(sample_stats(), "demo", counters, 0);
  std::istringstream in(text);
  std::string line, current;
  double last = -1;
  while (std::getline(in, line)) {
    const size_t brace = line.find("_bucket{");
    if (line[0] == '#' || brace == std::string::npos) continue;
    const std::string series = line.substr(0, line.find(",le="));
    const double v = std::stod(line.substr(line.rfind(' ') + 1));
    if (series != current) {
      current = series;
      last = -1;
    }
    EXPECT_GE(v, last) << line;
    last = v;
  }
}

TEST(MetricsText, LabelEscaping) {
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace ls::server
