// openapi_test.cpp: the OpenAPI document is well formed: version 3.0.x, every $ref resolves, every operation
// has a unique operationId and responses with descriptions, every route the server answers is documented
// (and every documented route is answered, not 404), and the request schemas state this server's limits.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "demo_api.h"
#include "server/openapi.h"

namespace ls::server {
namespace {

void collect_refs(const OJson& node, std::set<std::string>& refs) {
  if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it.key() == "$ref" && it.value().is_string()) refs.insert(it.value().get<std::string>());
      collect_refs(it.value(), refs);
    }
  } else if (node.is_array()) {
    for (const OJson& item : node) collect_refs(item, refs);
  }
}

TEST(OpenApi, DocumentIsWellFormed) {
  OpenApiContext context;
  context.version = "1.2.3";
  context.limits.max_model_len = 2048;
  context.limits.max_input_tokens = 2047;
  context.limits.max_total_tokens = 2048;
  context.secured = true;
  context.model_names = {"", "demo", "calc"};
  const OJson doc = openapi_document(context);
  EXPECT_EQ(doc["openapi"].get<std::string>().rfind("3.0.", 0), 0u);
  EXPECT_EQ(doc["info"]["version"], "1.2.3");
  std::set<std::string> refs;
  collect_refs(doc, refs);
  const OJson& schemas = doc["components"]["schemas"];
  for (const std::string& ref : refs) {
    const std::string prefix = "#/components/schemas/";
    ASSERT_EQ(ref.rfind(prefix, 0), 0u) << ref;
    EXPECT_TRUE(schemas.contains(ref.substr(prefix.size()))) << "unresolved " << ref;
  }
  std::set<std::string> ids;
  for (auto path = doc["paths"].begin(); path != doc["paths"].end(); ++path) {
    for (auto op = path.value().begin(); op != path.value().end(); ++op) {
      SCOPED_TRACE(op.key() + " " + path.key());
      const OJson& o = op.value();
      ASSERT_TRUE(o.contains("operationId"));
      EXPECT_TRUE(ids.insert(o["operationId"].get<std::string>()).second) << "duplicate operationId";
      ASSERT_TRUE(o.contains("responses") && o["responses"].contains("200"));
      for (auto r = o["responses"].begin(); r != o["responses"].end(); ++r)
        EXPECT_TRUE(r.value().contains("description")) << r.key();
      if (op.key() == "post") {
        EXPECT_TRUE(o.contains("requestBody"));
      }
    }
  }
  const OJson& params = schemas["GenerateParameters"]["properties"];
  EXPECT_EQ(params["truncate"]["maximum"], 2047);
  EXPECT_EQ(params["best_of"]["maximum"], 2);
  EXPECT_EQ(params["stop"]["maxItems"], 4);
  EXPECT_EQ(schemas["CompletionRequest"]["properties"]["model"]["enum"], OJson::array({"", "demo", "calc"}));
  EXPECT_TRUE(doc["paths"]["/generate"]["post"].contains("security"));
  context.secured = false;
  EXPECT_FALSE(openapi_document(context)["paths"]["/generate"]["post"].contains("security"))
      << "without an API key the routes are open and the document says so";
}

TEST(OpenApi, EveryRouteIsDocumentedAndAnswered) {
  auto& demo = testing::DemoApi::shared();
  const auto reply = demo.call("GET", "/openapi.json");
  ASSERT_EQ(reply.status, 200);
  const OJson doc = OJson::parse(reply.body);
  const std::set<std::string> routes = {"/", "/generate", "/generate_stream", "/invocations", "/tokenize",
                                        "/chat_tokenize", "/detokenize", "/v1/completions", "/v1/chat/completions",
                                        "/v1/models", "/v1/models/{model_id}", "/health", "/ping", "/info",
                                        "/metrics", "/version", "/openapi.json", "/v1/capacity", "/v1/adapters",
                                        "/v1/stats", "/ui/{file}"};
  std::set<std::string> documented;
  for (auto it = doc["paths"].begin(); it != doc["paths"].end(); ++it) documented.insert(it.key());
  EXPECT_EQ(documented, routes);
  for (auto it = doc["paths"].begin(); it != doc["paths"].end(); ++it) {
    for (auto op = it.value().begin(); op != it.value().end(); ++op) {
      std::string path = it.key();
      if (path == "/v1/models/{model_id}") path = "/v1/models/demo";
      if (path == "/ui/{file}") path = "/ui/" + op.value()["parameters"][0]["schema"]["enum"][0].get<std::string>();
      std::string method = op.key();
      for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      // An empty body is enough to tell a route (400/422) from a missing one (404/405).
      const auto r = demo.call(method, path, method == "POST" ? "{}" : "");
      EXPECT_NE(r.status, 404) << method << " " << path << ": " << r.body;
      EXPECT_NE(r.status, 405) << method << " " << path;
      EXPECT_TRUE(op.value()["responses"].contains(std::to_string(r.status)))
          << method << " " << path << " answered " << r.status << ", which is not documented";
    }
  }
}

}  // namespace
}  // namespace ls::server
