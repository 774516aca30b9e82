// adapter_load_bench.cpp: adapter cold-load latency, files in the page cache to ready. Measures, median of
// --reps: the whole host-tier load as a request sees it (AdapterCatalog claim to ready: read, validate,
// convert to float32, fold scales, sha256), its two parts alone (load_lora_adapter; sha256 of the files), and,
// with --device, the copy into a device adapter slot (LoraSlots::load) and its two halves: stage (in the server,
// done once on the catalog's loader thread) and begin_load to is_ready (the copy a request waits for; staged
// bytes over that time next to it). Printed next to the floor of reading the files' bytes from memory (a memcpy
// of the same size measured in the same run).
//
//   python tools/adapters/make_adapters.py --base tests/data/configs/llama3-8b --out /tmp/big --prefix r16 --ranks 16
//   build/bench/adapter_load_bench --base tests/data/configs/llama3-8b --adapter /tmp/big/r16
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/file.h"
#include "core/json.h"
#include "core/timing.h"
#include "io/content_hash.h"
#include "lora/adapter_catalog.h"
#include "lora/lora_slots.h"

namespace {

using ls::median;
using ls::seconds_since;

template <typename F>
double median_ms(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(seconds_since(t0) * 1e3);
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"adapter_load_bench: adapter cold-load latency from the page cache"};
  std::string base, adapter, device;
  int reps = 5;
  app.add_option("--base", base, "model directory (config.json)")->required();
  app.add_option("--adapter", adapter, "PEFT adapter directory")->required();
  app.add_option("--reps", reps, "repetitions (median)");
  app.add_option("--device", device, "also time the copy into a device slot on this backend (cpu or cuda)");
  CLI11_PARSE(app, argc, argv);
  auto config = ls::load_model_config(base);
  if (!config.is_ok()) {
    std::fprintf(stderr, "adapter_load_bench: %s\n", config.status().to_string().c_str());
    return 1;
  }
  namespace fs = std::filesystem;
  const std::string weights = adapter + "/adapter_model.safetensors", cfg = adapter + "/adapter_config.json";
  std::error_code ec_weights, ec_cfg;
  const uintmax_t weight_bytes = fs::file_size(weights, ec_weights), cfg_bytes = fs::file_size(cfg, ec_cfg);
  if (ec_weights || ec_cfg) {
    std::fprintf(stderr, "adapter_load_bench: %s is not a PEFT adapter directory (%s and %s)\n", adapter.c_str(),
                 weights.c_str(), cfg.c_str());
    return 1;
  }
  const double file_bytes = static_cast<double>(weight_bytes + cfg_bytes);
  (void)ls::read_file(weights, SIZE_MAX);  // into the page cache

  // The floor: the same bytes copied once in memory.
  std::vector<char> src(static_cast<size_t>(file_bytes), 1), dst(src.size());
  const double memcpy_ms = median_ms(reps, [&] { std::memcpy(dst.data(), src.data(), src.size()); });

  const fs::path root = fs::path(adapter).parent_path();
  const std::string name = fs::path(adapter).filename().string();
  const double claim_ms = median_ms(reps, [&] {
    ls::AdapterCatalogOptions o;
    o.roots = {root.string()};
    ls::AdapterCatalog catalog(config.value(), o);
    auto claim = catalog.claim(name, ls::AdapterSource::kName);
    LS_CHECK(claim.is_ok()) << claim.status().to_string();
    while (!(*claim)->ready()) {
      LS_CHECK(!(*claim)->failed()) << (*claim)->error().to_string();
      std::this_thread::yield();
    }
  });
  ls::LoraAdapter loaded;
  const double parse_ms = median_ms(reps, [&] { loaded = ls::load_lora_adapter(adapter, config.value()).value(); });
  const double hash_ms = median_ms(reps, [&] { (void)ls::sha256_of_files({cfg, weights}).value(); });
  ls::Json out = {{"adapter", adapter},
                  {"file_bytes", file_bytes},
                  {"rank", loaded.max_rank},
                  {"parameters", loaded.num_parameters},
                  {"host_ready_ms", claim_ms},
                  {"load_and_convert_ms", parse_ms},
                  {"sha256_ms", hash_ms},
                  {"memcpy_floor_ms", memcpy_ms},
                  {"memcpy_gbps", file_bytes / (memcpy_ms * 1e-3) / 1e9}};
  if (!device.empty()) {
    auto backend = ls::make_backend(device);
    if (!backend.is_ok()) {
      std::fprintf(stderr, "adapter_load_bench: %s\n", backend.status().to_string().c_str());
      return 1;
    }
    auto slots = ls::LoraSlots::create(**backend, config.value(), 2).value();
    LS_CHECK(slots.load(0, loaded).is_ok());
    out["device_slot_load_ms"] = median_ms(reps, [&] {
      LS_CHECK(slots.load(1, loaded).is_ok());
      (*backend)->synchronize();
    });
    // The halves the engine splits it into: staging (the catalog's loader thread, once per host load) and the
    // copy from the staged buffer, begun beside the ops and polled until ready (what a request waits for).
    ls::StagedAdapter staged;
    out["stage_ms"] = median_ms(reps, [&] { staged = slots.stage(loaded).value(); });
    out["staged_bytes"] = staged.memory.bytes();
    const double copy_ms = median_ms(reps, [&] {
      LS_CHECK(slots.begin_load(1, staged).is_ok());
      while (!slots.is_ready(1)) {
      }
    });
    out["begin_load_to_ready_ms"] = copy_ms;
    out["begin_load_to_ready_gbps"] = static_cast<double>(staged.memory.bytes()) / (copy_ms * 1e-3) / 1e9;
  }
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
