// lora_adapter_fuzz.cpp: libFuzzer target for what a user's adapter files put in front of the server:
// adapter_config.json (the PEFT parser, target_modules and rank_pattern / alpha_pattern regexes) and
// adapter_model.safetensors (the header validation, tensor names, dtypes, shapes and ranks against a small
// Llama-shaped base, the conversion to float32). Input: a little-endian u16 n, n bytes of adapter_config.json,
// then the safetensors file. Whatever the bytes, the result is an adapter or an error, never a crash, a hang or
// a sanitizer report. Built and run by scripts/fuzz-adapter.sh.
#include <cstdint>
#include <cstring>
#include <string>

#include "io/safetensors.h"
#include "lora/lora_adapter.h"

namespace {

// 3 layers, hidden 64, 4 query heads and 2 KV heads of 16, MLP 96: every projection has its own shape.
ls::ModelConfig base() {
  ls::ModelConfig m;
  m.vocab_size = 128;
  m.hidden_size = 64;
  m.intermediate_size = 96;
  m.num_layers = 3;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 16;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ls::ModelConfig model = base();
  if (size < 2) return 0;
  const size_t n = std::min<size_t>(data[0] | (size_t{data[1]} << 8), size - 2);
  const std::string config_text(reinterpret_cast<const char*>(data + 2), n);
  auto config = ls::parse_adapter_config(config_text, model);
  auto file = ls::SafetensorsFile::parse(nullptr, data + 2 + n, size - 2 - n, "adapter_model.safetensors");
  if (!file.is_ok()) return 0;
  if (!config.is_ok()) {
    // Also the weights against a config that is valid, so that a broken config does not hide every weights path.
    config = ls::parse_adapter_config(R"({"r": 4, "lora_alpha": 8, "target_modules": "all-linear"})", model);
    if (!config.is_ok()) __builtin_trap();
  }
  auto adapter = ls::adapter_from_weights(std::move(config).value(), *file, model);
  if (adapter.is_ok()) {
    // A loaded adapter is consistent: every module it has matches its projection's shape at its rank.
    for (int64_t l = 0; l < model.num_layers; ++l)
      for (int m = 0; m < ls::kNumLoraModules; ++m) {
        const ls::LoraModuleTensors& t = adapter->layers[l][m];
        if (t.rank == 0) continue;
        const ls::ProjectionShape s = ls::projection_shape(model, static_cast<ls::LoraModule>(m));
        if (t.a.size() != static_cast<size_t>(t.rank * s.in_dim) || t.b.size() != static_cast<size_t>(s.out_dim * t.rank))
          __builtin_trap();
      }
  }
  return 0;
}
