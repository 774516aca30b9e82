// oracle_cases.cpp: reading case.json and the reference logits of an oracle case.
#include "oracle_cases.h"

#include "engine/generate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/json.h"

namespace ls::testing {

std::vector<float> OracleCase::reference(const std::string& run, size_t path) const {
  const TensorView* t = logits.find(run + "." + std::to_string(path));
  LS_CHECK(t) << "no reference logits for " << run << "." << path;
  return t->to_f32();
}

OracleCase load_oracle_case(const std::string& label, const std::string& case_dir, const std::string& model_root) {
  OracleCase c;
  c.label = label;
  c.base_dir = model_root + "/base";
  const Json j = read_json_file(case_dir + "/case.json").value();
  c.prompts = j.at("prompts").get<std::vector<std::vector<int32_t>>>();
  c.runs.push_back({"base", "", j.at("base_paths").get<std::vector<std::vector<int32_t>>>()});
  for (const Json& a : j.at("adapters")) {
    const std::string name = a.at("name").get<std::string>();
    c.runs.push_back({name, model_root + "/adapters/" + name, a.at("paths").get<std::vector<std::vector<int32_t>>>()});
  }
  c.logits = SafetensorsFile::open(case_dir + "/logits.safetensors").value();
  return c;
}

std::vector<OracleCase> cpu_reference_cases() {
  const std::string data = LS_TEST_DATA;
  std::vector<OracleCase> cases;
  for (const char* arch : {"llama", "mistral"})
    cases.push_back(load_oracle_case(std::string("cpu-ref/") + arch, data + "/oracle_cpu/" + arch, data + "/oracle/" + arch));
  for (const auto& entry : std::filesystem::directory_iterator(data + "/oracle_extra")) {
    if (!entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    cases.push_back(load_oracle_case("extra/" + entry.path().filename().string(), dir, dir));
  }
  return cases;
}

OracleCase shared_oracle_case(const std::string& arch) {
  const std::string dir = std::string(LS_TEST_DATA) + "/oracle/" + arch;
  return load_oracle_case("shared/" + arch, dir, dir);
}

Result<OracleEngine> OracleEngine::load(const std::string& device, const std::string& base_dir) {
  BackendOptions options;
  options.device = device;
  return load(options, base_dir);
}

Result<OracleEngine> OracleEngine::load(const BackendOptions& options, const std::string& base_dir) {
  OracleEngine e;
  LS_ASSIGN_OR_RETURN(e.backend, make_backend(options));
  LS_ASSIGN_OR_RETURN(e.model, Transformer::load(base_dir, *e.backend));
  return e;
}

SequenceOptions OracleEngine::use(const std::string& adapter_dir) {
  SequenceOptions o;
  if (adapter_dir.empty()) return o;
  auto adapter = load_lora_adapter(adapter_dir, model->config());
  LS_CHECK(adapter.is_ok()) << adapter.status().to_string();
  slots = std::make_unique<LoraSlots>(LoraSlots::create(*backend, model->config(), 1).value());
  LS_CHECK(slots->load(0, adapter.value()).is_ok());
  o.lora = slots.get();
  o.lora_slot = 0;
  return o;
}

Result<std::vector<std::vector<std::vector<int32_t>>>> engine_greedy_paths(const std::string& device,
                                                                          const OracleCase& c) {
  BackendOptions backend;
  backend.device = device;
  return engine_greedy_paths(backend, c);
}

Result<std::vector<std::vector<std::vector<int32_t>>>> engine_greedy_paths(const BackendOptions& backend,
                                                                          const OracleCase& c) {
  ServedModelOptions mo;
  mo.model = c.base_dir;
  mo.backend = backend;
  LS_ASSIGN_OR_RETURN(auto served, ServedModel::load(mo));
  EngineOptions eo;
  eo.max_loras = static_cast<int32_t>(c.runs.size());
  eo.max_num_seqs = 64;
  eo.kv_cache_bytes = 64 << 20;
  LS_ASSIGN_OR_RETURN(auto engine, Engine::create(*served, eo));
  std::vector<EngineRequest> requests;
  for (const OracleRun& run : c.runs) {
    if (!run.adapter_dir.empty()) LS_RETURN_IF_ERROR(engine->add_adapter(run.name, run.adapter_dir));
    for (size_t i = 0; i < run.paths.size(); ++i) {
      EngineRequest r;
      r.prompt = c.prompts[i];
      r.adapter = run.adapter_dir.empty() ? "" : run.name;
      r.params.stop.max_new_tokens = static_cast<int32_t>(run.paths[i].size() - c.prompts[i].size());
      r.params.stop.ignore_eos = true;
      requests.push_back(std::move(r));
    }
  }
  engine->start();
  LS_ASSIGN_OR_RETURN(std::vector<Generation> generated, generate_all(*engine, std::move(requests)));
  engine->shutdown(0);
  std::vector<std::vector<std::vector<int32_t>>> out(c.runs.size());
  size_t k = 0;
  for (size_t r = 0; r < c.runs.size(); ++r)
    for (size_t i = 0; i < c.runs[r].paths.size(); ++i, ++k) {
      if (generated[k].reason == FinishReason::kError) return generated[k].error;
      out[r].push_back(std::move(generated[k].tokens));
    }
  return out;
}

double row_error(const float* a, const float* b, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(a[i])) return INFINITY;
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

double top2_margin(const float* row, int64_t n) {
  std::vector<float> v(row, row + n);
  std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<>());
  double scale = 0;
  for (float x : v) scale = std::max(scale, static_cast<double>(std::fabs(x)));
  return (v[0] - v[1]) / scale;
}

}  // namespace ls::testing
