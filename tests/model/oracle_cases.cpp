// oracle_cases.cpp: reading case.json and the reference logits of an oracle case.
#include "oracle_cases.h"

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

}  // namespace ls::testing
