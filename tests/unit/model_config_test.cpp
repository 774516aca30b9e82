// model_config_test.cpp: config.json parsing: architectures, head_dim, both rope forms, llama3 frequencies,
// biases, and the clear errors for what we do not support.
#include <gtest/gtest.h>

#include <cmath>

#include "io/model_config.h"

namespace ls {
namespace {

Json base_config(const char* arch) {
  return Json{{"architectures", {arch}}, {"vocab_size", 100}, {"hidden_size", 64}, {"intermediate_size", 128},
              {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}};
}

ModelConfig parse_ok(const Json& j) {
  auto c = parse_model_config(j);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? c.value() : ModelConfig{};
}

void expect_error(const Json& j, ErrorCode code, const std::string& fragment) {
  auto c = parse_model_config(j);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), code) << c.status().to_string();
  EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status().to_string();
}

TEST(ModelConfig, DefaultsAndHeadDim) {
  ModelConfig c = parse_ok(base_config("LlamaForCausalLM"));
  EXPECT_EQ(c.arch, ModelArch::kLlama);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);
  Json j = base_config("MistralForCausalLM");
  j["head_dim"] = 32;  // explicit and != hidden / heads (Mistral-Nemo style)
  j["sliding_window"] = 4096;
  c = parse_ok(j);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_size(), 128);
  EXPECT_EQ(c.sliding_window, 4096);
  j = base_config("LlamaForCausalLM");
  j.erase("num_key_value_heads");
  EXPECT_EQ(parse_ok(j).num_kv_heads, 4);
}

TEST(ModelConfig, Qwen2HasQkvBiasAndTies) {
  Json j = base_config("Qwen2ForCausalLM");
  j["tie_word_embeddings"] = true;
  j["eos_token_id"] = {151643, 151645};
  ModelConfig c = parse_ok(j);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{151643, 151645}));
}

TEST(ModelConfig, RopeParametersAndRopeScalingFormsAgree) {
  Json v5 = base_config("LlamaForCausalLM");
  v5["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                           {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                           {"original_max_position_embeddings", 8192}};
  Json v4 = base_config("LlamaForCausalLM");
  v4["rope_theta"] = 500000.0;
  v4["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192}};
  ModelConfig a = parse_ok(v5), b = parse_ok(v4);
  EXPECT_EQ(a.rope.type, RopeType::kLlama3);
  EXPECT_EQ(b.rope.type, RopeType::kLlama3);
  EXPECT_EQ(a.rope_inv_freq(), b.rope_inv_freq());
}

TEST(ModelConfig, Llama3FrequencyBands) {
  Json j = base_config("LlamaForCausalLM");
  j["head_dim"] = 128;
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  const std::vector<float> inv = parse_ok(j).rope_inv_freq();
  ASSERT_EQ(inv.size(), 64u);
  // High frequencies (wavelength < 8192/4) are untouched, low ones (> 8192) divided by the factor.
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  const float raw_last = 1.0f / static_cast<float>(std::pow(500000.0, 126.0 / 128.0));
  EXPECT_NEAR(inv[63], raw_last / 8.0f, raw_last * 1e-5f);
  // A medium band value lies strictly between the two.
  bool found_medium = false;
  for (size_t i = 0; i < inv.size(); ++i) {
    const double raw = 1.0 / std::pow(500000.0, 2.0 * i / 128.0), wavelen = 2 * M_PI / raw;
    if (wavelen > 2048 && wavelen < 8192) {
      found_medium = true;
      EXPECT_LT(inv[i], raw);
      EXPECT_GT(inv[i], raw / 8.0);
    }
  }
  EXPECT_TRUE(found_medium);
}

TEST(ModelConfig, ClearErrorsForUnsupported) {
  expect_error(base_config("GPT2LMHeadModel"), ErrorCode::kUnsupported, "GPT2LMHeadModel");
  Json j = base_config("LlamaForCausalLM");
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error(j, ErrorCode::kUnsupported, "yarn");
  j = base_config("LlamaForCausalLM");
  j["hidden_act"] = "gelu";
  expect_error(j, ErrorCode::kUnsupported, "gelu");
  j = base_config("LlamaForCausalLM");
  j["quantization_config"] = {{"quant_method", "gptq"}};
  expect_error(j, ErrorCode::kUnsupported, "quantization_config");
  j = base_config("Qwen2ForCausalLM");
  j["use_sliding_window"] = true;
  expect_error(j, ErrorCode::kUnsupported, "use_sliding_window");
}

TEST(ModelConfig, ClearErrorsForBadValues) {
  Json j = base_config("LlamaForCausalLM");
  j.erase("hidden_size");
  expect_error(j, ErrorCode::kInvalidArgument, "\"hidden_size\"");
  j = base_config("LlamaForCausalLM");
  j["num_attention_heads"] = "four";
  expect_error(j, ErrorCode::kInvalidArgument, "\"num_attention_heads\" must be an integer");
  j = base_config("LlamaForCausalLM");
  j["num_key_value_heads"] = 3;
  expect_error(j, ErrorCode::kInvalidArgument, "multiple of num_key_value_heads");
  j = base_config("LlamaForCausalLM");
  j["vocab_size"] = -5;
  expect_error(j, ErrorCode::kInvalidArgument, "vocab_size");
  expect_error(Json::array(), ErrorCode::kInvalidArgument, "not a JSON object");
  auto missing = load_model_config("/nonexistent");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ls
