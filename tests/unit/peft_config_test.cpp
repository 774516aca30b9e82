// peft_config_test.cpp: PEFT's module matching rules (list suffixes, regex fullmatch, all-linear,
// layers_to_transform, exclude_modules) and per-module rank/alpha/scale (rank_pattern, alpha_pattern, rsLoRA),
// and the rejected features.
#include <gtest/gtest.h>

#include <cmath>

#include "lora/peft_config.h"

namespace ls {
namespace {

PeftLoraConfig parse_ok(const std::string& text) {
  auto c = parse_peft_config(text);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? c.value() : PeftLoraConfig{};
}

bool targeted(const PeftLoraConfig& c, const std::string& key) {
  auto r = is_lora_target(c, key);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() && r.value();
}

const char* kQ0 = "model.layers.0.self_attn.q_proj";
const char* kQ1 = "model.layers.1.self_attn.q_proj";
const char* kV1 = "model.layers.1.self_attn.v_proj";
const char* kDown3 = "model.layers.3.mlp.down_proj";

TEST(PeftConfig, ListMatchesExactOrDotSuffix) {
  auto c = parse_ok(R"J({"r":8,"lora_alpha":16,"target_modules":["q_proj","mlp.down_proj"]})J");
  EXPECT_TRUE(targeted(c, kQ0));
  EXPECT_TRUE(targeted(c, kDown3));
  EXPECT_FALSE(targeted(c, kV1));
  auto partial = parse_ok(R"J({"target_modules":["proj"]})J");  // not dot-aligned: no match
  EXPECT_FALSE(targeted(partial, kQ0));
}

TEST(PeftConfig, RegexIsFullMatch) {
  auto c = parse_ok(R"J({"target_modules":".*\\.(q_proj|v_proj)"})J");
  EXPECT_TRUE(targeted(c, kQ0));
  EXPECT_TRUE(targeted(c, kV1));
  EXPECT_FALSE(targeted(c, kDown3));
  auto prefix_only = parse_ok(R"J({"target_modules":"model\\.layers\\.1"})J");
  EXPECT_FALSE(targeted(prefix_only, kQ1));  // re.fullmatch, not re.match
  auto bad = parse_ok(R"J({"target_modules":"(unclosed"})J");
  EXPECT_FALSE(is_lora_target(bad, kQ0).is_ok());
}

TEST(PeftConfig, AllLinearAndLayersToTransform) {
  auto c = parse_ok(R"J({"target_modules":"all-linear","layers_to_transform":[1,3]})J");
  EXPECT_FALSE(targeted(c, kQ0));
  EXPECT_TRUE(targeted(c, kQ1));
  EXPECT_TRUE(targeted(c, kDown3));
  auto single = parse_ok(R"J({"target_modules":["q_proj"],"layers_to_transform":0,"layers_pattern":"layers"})J");
  EXPECT_TRUE(targeted(single, kQ0));
  EXPECT_FALSE(targeted(single, kQ1));
  // A full key in the list matches regardless of layers_to_transform (PEFT's early exact match).
  auto exact = parse_ok(R"J({"target_modules":["model.layers.1.self_attn.q_proj"],"layers_to_transform":[0]})J");
  EXPECT_TRUE(targeted(exact, kQ1));
}

TEST(PeftConfig, ExcludeModulesWins) {
  auto c = parse_ok(R"J({"target_modules":"all-linear","exclude_modules":["down_proj"]})J");
  EXPECT_TRUE(targeted(c, kQ0));
  EXPECT_FALSE(targeted(c, kDown3));
}

TEST(PeftConfig, RankAndAlphaPatternsFirstMatchInFileOrder) {
  auto c = parse_ok(R"J({"r":8,"lora_alpha":16,"target_modules":"all-linear",
      "rank_pattern":{"layers.1.self_attn.v_proj":6,"v_proj":2},"alpha_pattern":{"mlp.down_proj":32}})J");
  auto v1 = module_lora_params(c, kV1).value();
  EXPECT_EQ(v1.rank, 6);
  EXPECT_DOUBLE_EQ(v1.scale, 16.0 / 6.0);
  EXPECT_EQ(module_lora_params(c, "model.layers.0.self_attn.v_proj")->rank, 2);
  auto down = module_lora_params(c, kDown3).value();
  EXPECT_EQ(down.rank, 8);
  EXPECT_DOUBLE_EQ(down.scale, 32.0 / 8.0);
  // "q" alone is not a dot-aligned suffix of q_proj.
  auto q = parse_ok(R"J({"r":4,"target_modules":["q_proj"],"rank_pattern":{"q":1}})J");
  EXPECT_EQ(module_lora_params(q, kQ0)->rank, 4);
}

TEST(PeftConfig, RsLoraScale) {
  auto c = parse_ok(R"J({"r":16,"lora_alpha":8,"use_rslora":true,"target_modules":["q_proj"]})J");
  EXPECT_DOUBLE_EQ(module_lora_params(c, kQ0)->scale, 8.0 / 4.0);
}

TEST(PeftConfig, RejectsUnsupportedFeaturesNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"J({"target_modules":["q_proj"],"use_dora":true})J", "use_dora"},
      {R"J({"target_modules":["q_proj"],"modules_to_save":["lm_head"]})J", "modules_to_save"},
      {R"J({"target_modules":["q_proj"],"bias":"all"})J", "bias"},
      {R"J({"target_modules":["q_proj"],"bias":"lora_only"})J", "bias"},
      {R"J({"target_modules":["q_proj"],"fan_in_fan_out":true})J", "fan_in_fan_out"},
      {R"J({"target_modules":["q_proj"],"peft_type":"IA3"})J", "peft_type"},
      {R"J({"target_modules":["q_proj"],"lora_bias":true})J", "lora_bias"},
  };
  for (const auto& [text, field] : cases) {
    auto c = parse_peft_config(text);
    ASSERT_FALSE(c.is_ok()) << text;
    EXPECT_EQ(c.status().code(), ErrorCode::kUnsupported) << text;
    EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status().to_string();
  }
}

TEST(PeftConfig, RejectsMalformed) {
  EXPECT_FALSE(parse_peft_config("{not json").is_ok());
  EXPECT_FALSE(parse_peft_config(R"J({"target_modules":["q_proj"],"r":0})J").is_ok());
  EXPECT_FALSE(parse_peft_config(R"J({"r":8})J").is_ok());  // no target_modules
  EXPECT_FALSE(parse_peft_config(R"J({"target_modules":[1,2]})J").is_ok());
  EXPECT_FALSE(parse_peft_config(R"J({"target_modules":["q_proj"],"rank_pattern":{"q_proj":"x"}})J").is_ok());
  // Unknown keys are ignored, as PEFT does.
  EXPECT_TRUE(parse_peft_config(R"J({"target_modules":["q_proj"],"some_future_key":{"a":1}})J").is_ok());
}

}  // namespace
}  // namespace ls
