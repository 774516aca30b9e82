// lora_adapter_test.cpp: loading PEFT adapters against a base model: scale folding, and every rejection the
// foundation issue lists (DoRA, modules_to_save, bias, embedding LoRA, unknown targets, missing or corrupt files,
// shape mismatches from an adapter for another base model), each with a clear error naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "io/safetensors.h"
#include "lora/lora_adapter.h"
#include "support/test_files.h"

namespace ls {
namespace {

const std::string kOracle = std::string(LS_TEST_DATA) + "/oracle";

ModelConfig llama_config() { return load_model_config(kOracle + "/llama/base").value(); }

std::vector<testing::RawTensor> tensors_of(const std::string& path) {
  std::vector<testing::RawTensor> out;
  auto file = SafetensorsFile::open(path).value();
  for (const auto& [name, v] : file.tensors())
    out.push_back({name, std::string(dtype_name(v.dtype)), v.shape, std::vector<uint8_t>(v.data, v.data + v.num_bytes)});
  return out;
}

// Copies an oracle adapter into a temp dir, applying edits to its config and tensors.
std::string make_adapter(const testing::TempDir& dir, const std::string& source,
                         const std::function<void(Json&)>& edit_config,
                         const std::function<void(std::vector<testing::RawTensor>&)>& edit_tensors = nullptr) {
  Json config = read_json_file(source + "/adapter_config.json").value();
  if (edit_config) edit_config(config);
  auto tensors = tensors_of(source + "/adapter_model.safetensors");
  if (edit_tensors) edit_tensors(tensors);
  testing::write_text(dir.file("a/adapter_config.json"), config.dump());
  testing::write_bytes(dir.file("a/adapter_model.safetensors"), testing::safetensors_bytes(tensors));
  return dir.file("a");
}

void expect_rejected(const std::string& adapter_dir, ErrorCode code, const std::string& fragment,
                     const ModelConfig& model = llama_config()) {
  auto r = load_lora_adapter(adapter_dir, model);
  ASSERT_FALSE(r.is_ok()) << "expected rejection mentioning " << fragment;
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().to_string();
}

const std::string kQv = kOracle + "/llama/adapters/qv_r8";

TEST(LoraAdapter, LoadsAndFoldsScaleIntoB) {
  auto adapter = load_lora_adapter(kQv, llama_config());
  ASSERT_TRUE(adapter.is_ok()) << adapter.status().to_string();
  EXPECT_EQ(adapter->max_rank, 8);
  const auto& q = adapter->layers[0][static_cast<int>(LoraModule::kQ)];
  EXPECT_EQ(q.rank, 8);
  EXPECT_EQ(adapter->layers[0][static_cast<int>(LoraModule::kK)].rank, 0);
  const auto raw_b = SafetensorsFile::open(kQv + "/adapter_model.safetensors")
                         .value()
                         .find("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
                         ->to_f32();
  ASSERT_EQ(raw_b.size(), q.b.size());
  for (size_t i = 0; i < raw_b.size(); ++i) EXPECT_FLOAT_EQ(q.b[i], raw_b[i] * 2.0f);  // alpha 16 / r 8
}

TEST(LoraAdapter, LoadsEveryOracleAdapter) {
  for (const char* arch : {"llama", "mistral"}) {
    const ModelConfig model = load_model_config(kOracle + "/" + arch + "/base").value();
    for (const char* name : {"qv_r8", "all_r16", "rslora_r4", "pattern", "regex_r6"}) {
      auto a = load_lora_adapter(kOracle + "/" + arch + "/adapters/" + name, model);
      EXPECT_TRUE(a.is_ok()) << arch << "/" << name << ": " << a.status().to_string();
    }
  }
  auto pattern = load_lora_adapter(kOracle + "/llama/adapters/pattern", llama_config()).value();
  EXPECT_EQ(pattern.layers[1][static_cast<int>(LoraModule::kK)].rank, 2);  // rank_pattern {k_proj: 2}
}

TEST(LoraAdapter, RejectsUnsupportedConfigFeatures) {
  testing::TempDir d1, d2, d3, d4;
  expect_rejected(make_adapter(d1, kQv, [](Json& c) { c["use_dora"] = true; }), ErrorCode::kUnsupported, "use_dora");
  expect_rejected(make_adapter(d2, kQv, [](Json& c) { c["modules_to_save"] = {"lm_head"}; }), ErrorCode::kUnsupported,
                  "modules_to_save");
  expect_rejected(make_adapter(d3, kQv, [](Json& c) { c["bias"] = "all"; }), ErrorCode::kUnsupported, "bias");
  expect_rejected(make_adapter(d4, kQv, [](Json& c) { c["target_modules"] = {"q_proj", "c_attn"}; }),
                  ErrorCode::kInvalidArgument, "\"c_attn\" matches no module");
}

TEST(LoraAdapter, RejectsEmbeddingLora) {
  testing::TempDir d1, d2;
  expect_rejected(make_adapter(d1, kQv, [](Json& c) { c["target_modules"] = {"q_proj", "v_proj", "embed_tokens"}; }),
                  ErrorCode::kUnsupported, "embedding LoRA");
  expect_rejected(make_adapter(d2, kQv, nullptr,
                               [](auto& t) {
                                 t.push_back(testing::f32_tensor("base_model.model.model.embed_tokens.lora_embedding_A",
                                                                 {8, 512}, 0.1f));
                               }),
                  ErrorCode::kUnsupported, "embedding LoRA");
}

TEST(LoraAdapter, RejectsDoraAndBiasTensors) {
  testing::TempDir d1, d2;
  expect_rejected(make_adapter(d1, kQv, nullptr,
                               [](auto& t) {
                                 t.push_back(testing::f32_tensor(
                                     "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", {64}, 1.f));
                               }),
                  ErrorCode::kUnsupported, "DoRA");
  expect_rejected(make_adapter(d2, kQv, nullptr,
                               [](auto& t) {
                                 t.push_back(testing::f32_tensor("base_model.model.model.layers.0.self_attn.q_proj.bias",
                                                                 {64}, 1.f));
                               }),
                  ErrorCode::kUnsupported, "bias");
}

TEST(LoraAdapter, RejectsAdapterForAnotherBaseModel) {
  // Mistral's oracle has 1 KV head, Llama's 2: v_proj's lora_B is [16, 8] where Llama needs [32, 8].
  expect_rejected(kOracle + "/mistral/adapters/qv_r8", ErrorCode::kInvalidArgument, "another base model");
  ModelConfig fewer_layers = llama_config();
  fewer_layers.num_layers = 2;
  expect_rejected(kQv, ErrorCode::kInvalidArgument, "layer 2", fewer_layers);
}

TEST(LoraAdapter, RejectsInconsistentTensors) {
  testing::TempDir d1, d2, d3, d4;
  auto drop = [](const std::string& suffix) {
    return [suffix](std::vector<testing::RawTensor>& t) {
      std::erase_if(t, [&](const testing::RawTensor& x) { return x.name.ends_with(suffix); });
    };
  };
  expect_rejected(make_adapter(d1, kQv, nullptr, drop("layers.1.self_attn.q_proj.lora_B.weight")),
                  ErrorCode::kInvalidArgument, "only one of lora_A and lora_B");
  expect_rejected(make_adapter(d2, kQv, nullptr,
                               [](auto& t) {
                                 std::erase_if(t, [](auto& x) { return x.name.find("layers.2.self_attn.v_proj") != std::string::npos; });
                               }),
                  ErrorCode::kInvalidArgument, "targets model.layers.2.self_attn.v_proj but it has no lora_A/lora_B");
  expect_rejected(make_adapter(d3, kQv, [](Json& c) { c["target_modules"] = {"q_proj"}; }), ErrorCode::kInvalidArgument,
                  "does not select");
  expect_rejected(make_adapter(d4, kQv, [](Json& c) { c["r"] = 4; }), ErrorCode::kInvalidArgument,
                  "rank 4 (r / rank_pattern) but its tensors have rank 8");
}

TEST(LoraAdapter, RejectsMissingAndCorruptFiles) {
  expect_rejected("/nonexistent/adapter", ErrorCode::kNotFound, "not found");
  testing::TempDir d1, d2, d3, d4, d5;
  std::string dir = make_adapter(d1, kQv, nullptr);
  std::filesystem::remove(dir + "/adapter_config.json");
  expect_rejected(dir, ErrorCode::kNotFound, "adapter_config.json");
  dir = make_adapter(d2, kQv, nullptr);
  std::filesystem::remove(dir + "/adapter_model.safetensors");
  expect_rejected(dir, ErrorCode::kNotFound, "adapter_model.safetensors");
  testing::write_bytes(dir + "/adapter_model.bin", {1, 2, 3});
  expect_rejected(dir, ErrorCode::kUnsupported, "adapter_model.bin");
  dir = make_adapter(d3, kQv, nullptr);
  std::filesystem::resize_file(dir + "/adapter_model.safetensors", 1000);
  expect_rejected(dir, ErrorCode::kCorrupt, "adapter_model.safetensors");
  dir = make_adapter(d4, kQv, nullptr);
  testing::write_text(dir + "/adapter_config.json", "{\"r\": 8, \"target_modules\": [\"q_proj\"");
  expect_rejected(dir, ErrorCode::kInvalidArgument, "not valid JSON");
  dir = make_adapter(d5, kQv, nullptr, [](auto& t) {
    for (auto& x : t) {
      x.dtype = "I32";
    }
  });
  expect_rejected(dir, ErrorCode::kInvalidArgument, "dtype I32");
}

TEST(LoraAdapter, RejectsUnexpectedTensorNames) {
  testing::TempDir d1, d2;
  expect_rejected(make_adapter(d1, kQv, nullptr,
                               [](auto& t) { t.push_back(testing::f32_tensor("something.else", {2}, 0.f)); }),
                  ErrorCode::kInvalidArgument, "unexpected tensor \"something.else\"");
  expect_rejected(make_adapter(d2, kQv, nullptr,
                               [](auto& t) {
                                 t.push_back(testing::f32_tensor("base_model.model.lm_head.lora_A.weight", {8, 64}, 0.f));
                               }),
                  ErrorCode::kUnsupported, "lm_head");
}

}  // namespace
}  // namespace ls
