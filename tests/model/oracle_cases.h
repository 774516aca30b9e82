// oracle_cases.h: the oracle cases in tests/data as tests see them: a base model, its adapters, prompts, greedy
// paths and teacher-forced reference logits (layout of ../shared/oracle, see its README).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace ls::testing {

struct OracleRun {
  std::string name;         // "base" or the adapter's name
  std::string adapter_dir;  // empty for the base model
  std::vector<std::vector<int32_t>> paths;
};

struct OracleCase {
  std::string label;
  std::string base_dir;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<OracleRun> runs;  // base first
  SafetensorsFile logits;       // "<run>.<i>" -> [len(path), vocab] float32

  std::vector<float> reference(const std::string& run, size_t path) const;
};

// case_dir holds case.json and logits.safetensors; models come from model_root (base/, adapters/NAME).
OracleCase load_oracle_case(const std::string& label, const std::string& case_dir, const std::string& model_root);

// The shared oracle copied into tests/data/oracle, with the float32 CPU transformers+peft references of the
// same cases (tests/data/oracle_cpu) and the extra cases (tests/data/oracle_extra).
std::vector<OracleCase> cpu_reference_cases();
OracleCase shared_oracle_case(const std::string& arch);

}  // namespace ls::testing
