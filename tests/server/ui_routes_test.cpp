// ui_routes_test.cpp: the page's routes over the demo model. GET / and every file the page refers to (the
// HTML's /ui/ links and the scripts' imports) are served byte for byte as in web/, with their content types,
// an ETag that If-None-Match turns into 304, and a Content-Security-Policy without inline code; other methods
// get 405 and unknown files 404; without the page (--no-ui) GET / is the health check again. /v1/stats counts
// an adapter's tokens and reads the same clock as /v1/adapters' last_used.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "demo_api.h"
#include "server/json_fields.h"
#include "support/test_files.h"

namespace ls::server {
namespace {

using testing::DemoApi;

std::string read_web_file(const std::string& name) {
  return ls::testing::read_text(std::string(LS_SOURCE_DIR) + "/web/" + name);
}

// Every "/ui/NAME" in text and every `from "./NAME"` import.
std::set<std::string> referenced_files(const std::string& text) {
  std::set<std::string> out;
  const std::regex link(R"re((?:/ui/|from "\./)([A-Za-z0-9._-]+))re");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), link); it != std::sregex_iterator(); ++it)
    out.insert((*it)[1].str());
  return out;
}

TEST(UiRoutes, PageAndEveryFileItUsesAreServed) {
  auto& demo = DemoApi::shared();
  const auto page = demo.call("GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(page.body, read_web_file("index.html"));
  const std::string csp = page.header("Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  EXPECT_EQ(page.header("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(page.header("Cache-Control"), "no-cache");

  std::set<std::string> seen, todo = referenced_files(page.body);
  EXPECT_TRUE(todo.count("app.js") && todo.count("style.css")) << page.body;
  const std::map<std::string, std::string> types = {{"js", "text/javascript; charset=utf-8"},
                                                    {"css", "text/css; charset=utf-8"},
                                                    {"svg", "image/svg+xml"}};
  while (!todo.empty()) {
    const std::string name = *todo.begin();
    todo.erase(todo.begin());
    if (!seen.insert(name).second) continue;
    SCOPED_TRACE(name);
    const auto file = demo.call("GET", "/ui/" + name);
    ASSERT_EQ(file.status, 200) << file.body;
    EXPECT_EQ(file.content_type, types.at(name.substr(name.rfind('.') + 1)));
    EXPECT_EQ(file.body, read_web_file(name));
    EXPECT_FALSE(file.header("ETag").empty());
    for (const std::string& more : referenced_files(file.body)) todo.insert(more);
  }
  EXPECT_GE(seen.size(), 6u) << "app.js imports api.js, playground.js, dashboard.js; dashboard.js chart.js";
}

TEST(UiRoutes, RevalidationMethodsAndUnknownFiles) {
  auto& demo = DemoApi::shared();
  const auto first = demo.call("GET", "/ui/app.js");
  const std::string etag = first.header("ETag");
  ASSERT_EQ(etag.front(), '"');
  auto again = demo.call("GET", "/ui/app.js", "", {{"if-none-match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.body, "");
  EXPECT_EQ(again.header("ETag"), etag);
  again = demo.call("GET", "/ui/app.js", "", {{"if-none-match", "\"stale\""}});
  EXPECT_EQ(again.status, 200);
  EXPECT_NE(demo.call("GET", "/", "", {{"if-none-match", etag}}).status, 304) << "each file has its own ETag";

  const auto put = demo.call("PUT", "/ui/app.js", "x");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.header("Allow"), "GET");
  for (const char* missing : {"/ui/nope.js", "/ui/", "/ui/../api.cpp", "/ui/index.html", "/index.html"})
    EXPECT_EQ(demo.call("GET", missing).status, 404) << missing;
  // POST / stays TGI's compat route.
  const auto compat = demo.call("POST", "/", R"({"inputs": "hi", "parameters": {"max_new_tokens": 2}})");
  EXPECT_EQ(compat.status, 200) << compat.body;
  EXPECT_TRUE(OJson::parse(compat.body).is_array());
}

TEST(UiRoutes, WithoutThePageRootIsTheHealthCheck) {
  ServerOptions options;
  options.ui = false;
  DemoApi plain({}, options);
  const auto root = plain.call("GET", "/");
  EXPECT_EQ(root.status, 200);
  EXPECT_EQ(root.body, "");
  EXPECT_EQ(plain.call("GET", "/ui/app.js").status, 404);
  const OJson doc = OJson::parse(plain.call("GET", "/openapi.json").body);
  EXPECT_EQ(doc["paths"]["/"]["get"]["operationId"], "health_root");
  EXPECT_FALSE(doc["paths"].contains("/ui/{file}"));
  EXPECT_TRUE(doc["paths"].contains("/v1/stats"));
}

TEST(UiRoutes, PageIsOpenButItsDataNeedsTheKey) {
  ServerOptions options;
  options.api_keys = {"k3y"};
  DemoApi guarded({"calc"}, options);
  EXPECT_EQ(guarded.call("GET", "/").status, 200);
  EXPECT_EQ(guarded.call("GET", "/ui/api.js").status, 200);
  EXPECT_EQ(guarded.call("GET", "/v1/stats").status, 401);
  EXPECT_EQ(guarded.call("GET", "/v1/stats", "", {{"authorization", "Bearer k3y"}}).status, 200);
}

TEST(UiRoutes, StatsCountTokensPerAdapterOnTheAdaptersClock) {
  auto& demo = DemoApi::shared();
  auto tokens_of = [](const OJson& stats, const std::string& name) -> int64_t {
    for (const OJson& a : stats["adapters"])
      if (a["name"] == name) return a["generation_tokens"].get<int64_t>();
    return 0;
  };
  const OJson before = OJson::parse(demo.call("GET", "/v1/stats").body);
  const auto r = demo.call("POST", "/v1/completions",
                           R"({"model": "calc", "prompt": "What is 1 + 2?", "max_tokens": 5, "temperature": 0})");
  ASSERT_EQ(r.status, 200) << r.body;
  const int64_t generated = OJson::parse(r.body)["usage"]["completion_tokens"].get<int64_t>();
  const auto reply = demo.call("GET", "/v1/stats");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.header("Cache-Control"), "no-store");
  const OJson after = OJson::parse(reply.body);
  EXPECT_EQ(tokens_of(after, "calc") - tokens_of(before, "calc"), generated);
  EXPECT_GE(after["generation_tokens"].get<int64_t>() - before["generation_tokens"].get<int64_t>(), generated);
  EXPECT_GT(after["kv_blocks_total"].get<int64_t>(), 0);
  EXPECT_GE(after["clock"].get<double>(), before["clock"].get<double>());
  for (const OJson& a : OJson::parse(demo.call("GET", "/v1/adapters").body)["data"]) {
    if (a["name"] != "calc") continue;
    const double last_used = a["last_used"].get<double>();
    EXPECT_GT(last_used, 0);
    EXPECT_LE(last_used, after["clock"].get<double>());
    EXPECT_GT(last_used, after["clock"].get<double>() - 60) << "last_used and clock are on the same clock";
  }
}

}  // namespace
}  // namespace ls::server
