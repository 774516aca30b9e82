// offline_bench.cpp: the engine without HTTP. Runs a request file (written by serving_bench.py
// --dump-requests: model, prompt, max_tokens) through the serving engine in-process, all requests submitted at
// once (`generate`-style offline batching), and prints output tokens/s next to the same step counts the server
// reports, so the server's overhead is the difference between this and serving_bench.py on the same file.
//
//   build/bench/offline_bench --model models/demo/base --adapter calc=models/demo/adapters/calc
//       --requests /tmp/requests.json --ignore-eos
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include "core/json.h"
#include "engine/generate.h"

namespace {

int fail(const ls::Status& s) {
  std::fprintf(stderr, "offline_bench: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"offline_bench: a request file through the engine, in-process"};
  std::string model, requests_file, device = "cpu";
  std::vector<std::string> adapters, adapter_dirs;
  bool ignore_eos = false;
  int32_t max_num_seqs = 256, max_loras = 0, max_cpu_loras = 0;
  app.add_option("--model", model, "model directory")->required();
  app.add_option("--adapter", adapters, "NAME=DIR (repeatable)");
  app.add_option("--requests", requests_file, "JSON list of {model, prompt, max_tokens}")->required();
  app.add_option("--device", device, "cpu or cuda");
  app.add_option("--max-num-seqs", max_num_seqs, "sequences per step");
  app.add_option("--adapter-dir", adapter_dirs, "root whose subdirectories requests name (repeatable)");
  app.add_option("--max-loras", max_loras, "adapter slots (default: one per --adapter, at least 1)");
  app.add_option("--max-cpu-loras", max_cpu_loras, "adapters kept in host memory (0: no limit)");
  app.add_flag("--ignore-eos", ignore_eos, "run every request to its max_tokens");
  CLI11_PARSE(app, argc, argv);

  ls::ServedModelOptions mo;
  mo.model = model;
  mo.backend.device = device;
  auto served = ls::ServedModel::load(mo);
  if (!served.is_ok()) return fail(served.status());
  ls::EngineOptions eo;
  eo.max_num_seqs = max_num_seqs;
  eo.max_loras = max_loras > 0 ? max_loras : std::max<int32_t>(1, static_cast<int32_t>(adapters.size()));
  eo.adapter_dirs = adapter_dirs;
  eo.max_cpu_loras = max_cpu_loras;
  auto engine = ls::Engine::create(**served, eo);
  if (!engine.is_ok()) return fail(engine.status());
  for (const std::string& a : adapters) {
    const auto eq = a.find('=');
    if (eq == std::string::npos) return fail(ls::invalid_argument("--adapter takes NAME=DIR"));
    if (auto s = (*engine)->add_adapter(a.substr(0, eq), a.substr(eq + 1)); !s.is_ok()) return fail(s);
  }
  auto file = ls::read_json_file(requests_file);
  if (!file.is_ok()) return fail(file.status());
  std::vector<ls::EngineRequest> requests;
  for (const ls::Json& j : file.value()) {
    ls::EngineRequest r;
    const std::string name = j.at("model").get<std::string>();
    r.adapter = (*served)->is_base_name(name) || name == model ? "" : name;
    auto ids = (*served)->tokenizer().encode(j.at("prompt").get<std::string>(), true);
    if (!ids.is_ok()) return fail(ids.status());
    r.prompt = std::move(ids).value();
    r.params.stop.max_new_tokens = j.at("max_tokens").get<int32_t>();
    r.params.stop.ignore_eos = ignore_eos;
    requests.push_back(std::move(r));
  }
  (*engine)->start();
  const auto t0 = std::chrono::steady_clock::now();
  auto out = ls::generate_all(**engine, std::move(requests));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!out.is_ok()) return fail(out.status());
  int64_t tokens = 0;
  for (const ls::Generation& g : out.value()) tokens += static_cast<int64_t>(g.tokens.size());
  const ls::EngineStats st = (*engine)->stats();
  ls::Json result = {{"completed", out->size()},
                     {"duration", seconds},
                     {"total_output_tokens", tokens},
                     {"output_throughput", tokens / seconds},
                     {"request_throughput", out->size() / seconds},
                     {"steps", st.steps},
                     {"decode_steps", st.decode_steps},
                     {"mean_decode_step_ms", st.decode_steps ? 1e3 * st.decode_step_seconds / st.decode_steps : 0.0},
                     {"adapter_loads", st.adapter_loads},
                     {"adapter_slot_loads", st.adapter_slot_loads},
                     // From a slot's acquire to the step that found its copy done: what an adapter request
                     // waited for its adapter to reach the device (cold load exposed to it; others never wait).
                     {"adapter_slot_loads_done", st.adapter_slot_loads_done},
                     {"mean_adapter_slot_load_ms",
                      st.adapter_slot_loads_done ? 1e3 * st.adapter_slot_load_seconds / st.adapter_slot_loads_done : 0.0},
                     {"max_adapter_slot_load_ms", 1e3 * st.adapter_slot_load_max_seconds},
                     {"adapter_evictions", st.adapter_evictions}};
  std::printf("%s\n", result.dump(1).c_str());
  (*engine)->shutdown(0);
  return 0;
}
