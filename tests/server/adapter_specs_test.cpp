// adapter_specs_test.cpp: the start-up adapter lists in each launcher's spelling (TGI --lora-adapters /
// LORA_ADAPTERS, vLLM --lora-modules plain and JSON), and how requests name adapters afterwards (ApiModel:
// OpenAI `model` by name, base:adapter, Hub id; TGI adapter_id with adapter_source).
#include <gtest/gtest.h>

#include "server/adapter_specs.h"
#include "server/api_model.h"

namespace ls::server {
namespace {

TEST(AdapterSpecs, TgiList) {
  auto specs = parse_tgi_adapter_list("predibase/customer_support, org/sql@v2,mine=/data/adapters/mine ,");
  ASSERT_TRUE(specs.is_ok()) << specs.status().to_string();
  ASSERT_EQ(specs->size(), 3u);
  EXPECT_EQ((*specs)[0].name, "predibase/customer_support");
  EXPECT_EQ((*specs)[0].source, "predibase/customer_support");
  EXPECT_EQ((*specs)[1].name, "org/sql");
  EXPECT_EQ((*specs)[1].source, "org/sql@v2");
  EXPECT_EQ((*specs)[2].name, "mine");
  EXPECT_EQ((*specs)[2].source, "/data/adapters/mine");
  auto local = parse_tgi_adapter("/data/adapters/calc/");
  ASSERT_TRUE(local.is_ok());
  EXPECT_EQ(local->name, "calc");
  EXPECT_TRUE(parse_tgi_adapter_list("").value().empty());
  EXPECT_FALSE(parse_tgi_adapter("=x").is_ok());
  EXPECT_FALSE(parse_tgi_adapter("name=").is_ok());
}

TEST(AdapterSpecs, VllmLoraModules) {
  auto plain = parse_vllm_lora_module("sql-lora=/p/sql");
  ASSERT_TRUE(plain.is_ok());
  EXPECT_EQ(plain->name, "sql-lora");
  EXPECT_EQ(plain->source, "/p/sql");
  auto json = parse_vllm_lora_module(R"({"name": "sql-lora", "path": "/p", "base_model_name": "meta/llama"})");
  ASSERT_TRUE(json.is_ok()) << json.status().to_string();
  EXPECT_EQ(json->name, "sql-lora");
  EXPECT_EQ(json->source, "/p");
  EXPECT_EQ(json->base_model_name, "meta/llama");
  EXPECT_FALSE(parse_vllm_lora_module("no-equals").is_ok());
  EXPECT_FALSE(parse_vllm_lora_module(R"({"name": "x"})").is_ok());
  EXPECT_FALSE(parse_vllm_lora_module(R"({"name": "x", "path": 3})").is_ok());
  EXPECT_FALSE(parse_vllm_lora_module("{broken").is_ok());
}

ApiModel model_with_adapters() {
  ApiModel m;
  m.names = {"meta/llama", "llama"};
  m.root = "/models/llama";
  AdapterInfo sql;
  sql.name = "sql";
  sql.path = "/adapters/sql";
  sql.source = "/adapters/sql";
  AdapterInfo hub;
  hub.name = "org--tone";
  hub.path = "/cache/models--org--tone/snapshots/abc";
  hub.source = "org/tone@v1";
  m.has_adapter = [](const std::string& n) { return n == "sql" || n == "org--tone" || n == "a:b"; };
  m.adapters = [sql, hub] { return std::vector<AdapterInfo>{sql, hub}; };
  return m;
}

TEST(ApiModel, OpenAiModelResolution) {
  const ApiModel m = model_with_adapters();
  EXPECT_EQ(m.resolve_model(std::nullopt).value(), "");
  EXPECT_EQ(m.resolve_model("").value(), "");
  EXPECT_EQ(m.resolve_model("tgi").value(), "");
  EXPECT_EQ(m.resolve_model("llama").value(), "");
  EXPECT_EQ(m.resolve_model("/models/llama").value(), "");
  EXPECT_EQ(m.resolve_model("sql").value(), "sql");
  EXPECT_EQ(m.resolve_model("meta/llama:sql").value(), "sql");
  EXPECT_EQ(m.resolve_model("llama:a:b").value(), "a:b") << "the adapter part may contain ':'";
  EXPECT_EQ(m.resolve_model("org/tone@v1").value(), "org--tone");
  const auto missing = m.resolve_model("other:sql");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "The model `other:sql` does not exist.");
  EXPECT_EQ(m.response_model_name(std::string("meta/llama:sql"), "sql"), "meta/llama:sql");
  EXPECT_EQ(m.response_model_name(std::string("sql"), "sql"), "sql");
  EXPECT_EQ(m.response_model_name(std::string(""), ""), "meta/llama");
}

TEST(ApiModel, TgiAdapterIdResolution) {
  const ApiModel m = model_with_adapters();
  auto name = [&](std::optional<std::string> id, std::optional<std::string> source) {
    return m.resolve_adapter_id(id, source).value().name;
  };
  EXPECT_EQ(name(std::nullopt, std::nullopt), "");
  EXPECT_EQ(name(std::string("__base_model__"), std::nullopt), "");
  EXPECT_EQ(name(std::string("sql"), std::nullopt), "sql");
  EXPECT_EQ(name(std::string("org/tone"), std::string("hub")), "org--tone");
  EXPECT_EQ(name(std::string("org/tone@v1"), std::nullopt), "org--tone");
  EXPECT_EQ(name(std::string("/adapters/sql"), std::string("local")), "sql");
  // Any other local path goes to the engine, which resolves it inside its --adapter-dir roots.
  const AdapterRef other = m.resolve_adapter_id(std::string("/adapters/other"), std::string("local")).value();
  EXPECT_EQ(other.name, "/adapters/other");
  EXPECT_EQ(other.source, "local");
  EXPECT_EQ(m.resolve_adapter_id(std::string("sql"), std::string("pbase")).status().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(m.resolve_adapter_id(std::string("s3://b/p/x"), std::string("s3")).value().source, "s3");
  EXPECT_EQ(m.resolve_adapter_id(std::string("nope"), std::nullopt).status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ls::server
