// oracle_cases.h: the oracle cases in tests/data as tests see them: a base model, its adapters, prompts, greedy
// paths and teacher-forced reference logits (layout of ../shared/oracle, see its README).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "lora/lora_slots.h"
#include "model/single_sequence.h"

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

// A model on a backend with at most one adapter resident, as the parity tests use it.
struct OracleEngine {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<LoraSlots> slots;

  // Loads base_dir on the named backend; kUnavailable and friends when the backend cannot be made.
  static Result<OracleEngine> load(const std::string& device, const std::string& base_dir);
  static Result<OracleEngine> load(const BackendOptions& options, const std::string& base_dir);
  // Puts the adapter (none when empty) in slot 0 and returns the options that run with it.
  SequenceOptions use(const std::string& adapter_dir);
};

// The greedy continuation of every path's prompt for every run of the case (as long as the path), computed by
// the serving engine on `device` with all runs' requests submitted together, so different adapters and the base
// share its steps: [run][path]. kUnavailable when the device cannot be used.
Result<std::vector<std::vector<std::vector<int32_t>>>> engine_greedy_paths(const std::string& device,
                                                                          const OracleCase& c);
Result<std::vector<std::vector<std::vector<int32_t>>>> engine_greedy_paths(const BackendOptions& backend,
                                                                          const OracleCase& c);

// max|a - b| / max|b| over one row (infinite when a holds a NaN).
double row_error(const float* a, const float* b, int64_t n);
// (top1 - top2) / max|row|: how close a row is to a greedy tie.
double top2_margin(const float* row, int64_t n);

}  // namespace ls::testing
