// s3_adapter_test.cpp: adapters from object storage against a real S3-compatible server (moto, started by
// s3_fixture.py with signature checking on) and a proxy that breaks transfers on purpose. SigV4 matches AWS's
// published examples; adapters under an s3:// root load on first use and are byte-for-byte the local copies
// (content hash) and generate the same tokens through the engine; wrong credentials, missing keys, truncated
// and corrupted transfers, stalls and truncated stored objects each fail their request with a clear error and
// leave nothing in the download cache; a cached version is served without downloading again; the cache keeps
// to its byte cap; s3:// URLs from requests never leave the roots.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/json.h"
#include "engine/generate.h"
#include "io/content_hash.h"
#include "io/s3_client.h"
#include "lora/adapter_catalog.h"
#include "support/test_files.h"

namespace ls {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";
const char* const kAdapters[] = {"calc", "reverse", "sql", "upper"};

struct Fixture {
  FILE* pipe = nullptr;
  Json info;
  std::string endpoint, proxy, access_key, secret_key, root;
};
Fixture* fixture = nullptr;

class S3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* python = std::getenv("LS_VENV_PYTHON");
    ASSERT_TRUE(python && fs::exists(python)) << "LS_VENV_PYTHON (the project's .venv, scripts/setup-venv.sh) is needed";
    fixture = new Fixture;
    const std::string cmd = std::string("exec ") + python + " " + LS_SOURCE_DIR +
                            "/tests/integrations/s3_fixture.py --demo " + kDemo + " 2>/dev/null";
    fixture->pipe = ::popen(cmd.c_str(), "r");
    ASSERT_NE(fixture->pipe, nullptr);
    char line[4096] = {};
    ASSERT_NE(std::fgets(line, sizeof(line), fixture->pipe), nullptr) << "s3_fixture.py did not start";
    fixture->info = Json::parse(line);
    fixture->endpoint = fixture->info["endpoint"];
    fixture->proxy = fixture->info["proxy"];
    fixture->access_key = fixture->info["access_key"];
    fixture->secret_key = fixture->info["secret_key"];
    fixture->root = "s3://adapters/loras";
  }
  static void TearDownTestSuite() {
    if (!fixture) return;
    if (fixture->info.contains("pid")) ::kill(fixture->info["pid"].get<int>(), SIGTERM);
    if (fixture->pipe) ::pclose(fixture->pipe);
    delete fixture;
    fixture = nullptr;
  }

  static S3Options s3(bool through_proxy = false) {
    S3Options o;
    o.endpoint_url = through_proxy ? fixture->proxy : fixture->endpoint;
    o.credentials.access_key_id = fixture->access_key;
    o.credentials.secret_access_key = fixture->secret_key;
    o.stall_timeout_s = 2;
    return o;
  }
  static AdapterCatalogOptions options(const std::string& cache_dir, bool through_proxy = false) {
    AdapterCatalogOptions o;
    o.roots = {fixture->root};
    o.remote.s3 = s3(through_proxy);
    o.remote.cache_dir = cache_dir;
    return o;
  }
};

const ModelConfig& demo_config() {
  static ModelConfig c = load_model_config(kDemo + "/base").value();
  return c;
}

std::shared_ptr<AdapterClaim> wait_loaded(const std::shared_ptr<AdapterClaim>& c) {
  for (int i = 0; i < 3000 && !c->ready() && !c->failed(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return c;
}

// The request's error: from resolution, or from the load.
Status claim_error(AdapterCatalog& catalog, const std::string& id, AdapterSource source = AdapterSource::kName) {
  auto c = catalog.claim(id, source);
  if (!c.is_ok()) return c.status();
  wait_loaded(c.value());
  if (c.value()->ready()) return Status::ok();
  return c.value()->error();
}

// Everything in the cache directory: entries and temporaries alike.
std::vector<std::string> cache_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& f : fs::recursive_directory_iterator(dir, ec)) out.push_back(f.path().string());
  return out;
}

int proxy_gets(const std::string& path) {
  const std::string cmd = "curl -s '" + fixture->proxy + "/__count?path=" + path + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buffer[64] = {};
  const bool read = std::fgets(buffer, sizeof(buffer), p) != nullptr;
  ::pclose(p);
  return read ? std::atoi(buffer) : -1;
}

TEST(SigV4, AwsPublishedExamples) {
  // "Signature Calculations for the Authorization Header" (Amazon S3 API reference): GET Object and
  // GET Bucket (list objects), examplebucket, 2013-05-24.
  const SigV4Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  SigV4Request get;
  get.host = "examplebucket.s3.amazonaws.com";
  get.path = "/test.txt";
  get.headers = {{"Range", "bytes=0-9"}};
  EXPECT_EQ(sigv4_signature(get, c, "us-east-1", "20130524T000000Z"),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  SigV4Request list;
  list.host = "examplebucket.s3.amazonaws.com";
  list.path = "/";
  list.query = {{"prefix", "J"}, {"max-keys", "2"}};
  EXPECT_EQ(sigv4_signature(list, c, "us-east-1", "20130524T000000Z"),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  EXPECT_EQ(sigv4_uri_encode("a b/c~d%", true), "a%20b/c~d%25");
  EXPECT_EQ(sigv4_canonical_query({{"prefix", "a b"}, {"list-type", "2"}}), "list-type=2&prefix=a%20b");
}

TEST(S3Url, ParsesAndRefuses) {
  auto ok = parse_s3_url("s3://my-bucket/a/b/");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->bucket, "my-bucket");
  EXPECT_EQ(ok->key, "a/b");
  EXPECT_EQ(ok->url(), "s3://my-bucket/a/b");
  for (const std::string& bad : std::vector<std::string>{"s3://", "s3://ab", "s3://UPPER/x", "s3://b..c/x", "s3://bucket/a//b", "s3://bucket/../x",
                                "s3://bucket/a/./b", "s3://bucket/a/%2e%2e/b", "s3://bucket/a\\b", "s3://bucket/a b",
                                "http://bucket/x", "s3://bucket/a\n", std::string("s3://bucket/a\0b", 15)})
    EXPECT_FALSE(parse_s3_url(bad).is_ok()) << bad;
  EXPECT_EQ(xml_elements("<a><K>x&amp;y&quot;</K><K>2</K></a>", "K"), (std::vector<std::string>{"x&y\"", "2"}));
}

TEST_F(S3Test, ClientListsAndDownloadsVerified) {
  S3Client client(s3());
  auto objects = client.list("adapters", "loras/calc/");
  ASSERT_TRUE(objects.is_ok()) << objects.status().to_string();
  ASSERT_EQ(objects->size(), 2u);
  TempDir dir;
  for (const S3Object& o : *objects) {
    ASSERT_TRUE(client.download("adapters", o, dir.file("f")).is_ok()) << o.key;
    EXPECT_EQ(sha256_of_files({dir.file("f")}).value(),
              sha256_of_files({kDemo + "/adapters/calc/" + fs::path(o.key).filename().string()}).value());
  }
  auto none = client.list("adapters", "loras/nosuch/");
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(client.list("no-such-bucket", "x").status().code(), ErrorCode::kNotFound);
  S3Object missing{"loras/nosuch/adapter_config.json", 10, ""};
  EXPECT_EQ(client.download("adapters", missing, dir.file("g")).code(), ErrorCode::kNotFound);
}

TEST_F(S3Test, AdaptersUnderAPrefixLoadOnFirstUseAsTheLocalCopies) {
  TempDir cache;
  AdapterCatalog catalog(demo_config(), options(cache.path()));
  AdapterCatalogOptions local;
  local.roots = {kDemo + "/adapters"};
  AdapterCatalog local_catalog(demo_config(), local);
  for (const char* name : kAdapters) {
    EXPECT_TRUE(catalog.known(name)) << name;
    auto c = wait_loaded(catalog.claim(name, AdapterSource::kName).value());
    ASSERT_TRUE(c->ready()) << name << ": " << c->error().to_string();
    auto l = wait_loaded(local_catalog.claim(name, AdapterSource::kName).value());
    ASSERT_TRUE(l->ready());
    EXPECT_EQ(c->adapter()->content_hash, l->adapter()->content_hash) << name;
    EXPECT_EQ(c->adapter()->source, fixture->root + "/" + name);
    EXPECT_EQ(fs::path(c->adapter()->path).parent_path().string(), fs::canonical(cache.path()).string());
  }
  EXPECT_FALSE(catalog.known("nosuch"));
  EXPECT_EQ(catalog.stats().loads, 4u);
  // LoRAX's adapter_source "s3" with a URL inside the root, and a second root searched in order.
  EXPECT_TRUE(claim_error(catalog, "s3://adapters/loras/upper", AdapterSource::kS3).is_ok());
  auto two = options(cache.path());
  two.roots.push_back("s3://adapters/other");
  AdapterCatalog catalog2(demo_config(), two);
  EXPECT_TRUE(claim_error(catalog2, "only-here").is_ok());
  // The management API takes an s3:// path under a name.
  EXPECT_TRUE(catalog.register_name("mine", "s3://adapters/other/only-here", "", false).is_ok());
}

TEST_F(S3Test, EngineAnswersLikeTheLocalCopies) {
  ServedModelOptions mo;
  mo.model = kDemo + "/base";
  auto model = ServedModel::load(mo);
  ASSERT_TRUE(model.is_ok());
  TempDir cache;
  std::vector<std::vector<int32_t>> outputs[2];
  for (int remote = 0; remote < 2; ++remote) {
    EngineOptions eo;
    eo.kv_cache_bytes = 32 << 20;
    eo.adapter_dirs = {remote ? fixture->root : kDemo + "/adapters"};
    eo.remote_adapters = options(cache.path()).remote;
    auto engine = Engine::create(**model, eo);
    ASSERT_TRUE(engine.is_ok());
    (*engine)->start();
    std::vector<EngineRequest> requests;
    for (const char* name : kAdapters) {
      const Json eval = read_json_file(kDemo + "/eval/" + name + ".json").value();
      EngineRequest r;
      r.prompt = eval.at("prompts")[0].at("prompt_ids").get<std::vector<int32_t>>();
      r.adapter = name;
      r.params.stop.max_new_tokens = 12;
      requests.push_back(r);
    }
    auto out = generate_all(**engine, requests);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    for (const Generation& g : *out) {
      EXPECT_EQ(g.reason == FinishReason::kError, false) << g.error.to_string();
      outputs[remote].push_back(g.tokens);
    }
    (*engine)->shutdown(1);
  }
  EXPECT_EQ(outputs[0], outputs[1]);
}

TEST_F(S3Test, WrongCredentialsAreAClearErrorAndLeaveNothing) {
  TempDir cache;
  auto o = options(cache.path());
  o.remote.s3.credentials.secret_access_key = "wrong-secret";
  AdapterCatalog wrong_secret(demo_config(), o);
  Status s = claim_error(wrong_secret, "calc");
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_NE(s.message().find("403"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("SignatureDoesNotMatch"), std::string::npos) << s.message();
  EXPECT_TRUE(wrong_secret.known("calc"));  // so that the request gets this error, not "no such model"
  o.remote.s3.credentials.access_key_id = "AKIANOSUCHKEY0000000";
  AdapterCatalog wrong_key(demo_config(), o);
  s = claim_error(wrong_key, "calc");
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_NE(s.message().find("credentials"), std::string::npos) << s.message();
  // Through the load path too (adapter_source s3 resolves without asking the store).
  s = claim_error(wrong_key, "s3://adapters/loras/calc", AdapterSource::kS3);
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_TRUE(cache_files(cache.path()).empty());
}

TEST_F(S3Test, MissingKeysTruncatedAndCorruptedTransfersLeaveNoPartialFiles) {
  TempDir cache;
  auto o = options(cache.path(), /*through_proxy=*/true);
  AdapterCatalog catalog(demo_config(), o);
  Status s = claim_error(catalog, "nosuch");
  EXPECT_EQ(s.code(), ErrorCode::kNotFound) << s.to_string();
  s = claim_error(catalog, "noweights");
  EXPECT_EQ(s.code(), ErrorCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("adapter_model.safetensors not found"), std::string::npos) << s.message();
  s = claim_error(catalog, "s3://adapters/loras/nosuch", AdapterSource::kS3);
  EXPECT_EQ(s.code(), ErrorCode::kNotFound) << s.to_string();
  s = claim_error(catalog, "cut");
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  s = claim_error(catalog, "flip");
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s.message();
  const auto t0 = std::chrono::steady_clock::now();
  s = claim_error(catalog, "slow");
  EXPECT_EQ(s.code(), ErrorCode::kFailedDependency) << s.to_string();
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  s = claim_error(catalog, "stored-truncated");  // downloads whole, fails validation, is not kept
  EXPECT_TRUE(s.code() == ErrorCode::kCorrupt || s.code() == ErrorCode::kInvalidArgument) << s.to_string();
  EXPECT_TRUE(cache_files(cache.path()).empty()) << cache_files(cache.path()).front();
  EXPECT_EQ(catalog.stats().load_failures, 6u);
  // The server goes on: a good adapter loads through the same proxy afterwards.
  EXPECT_TRUE(claim_error(catalog, "calc").is_ok());
}

TEST_F(S3Test, CachedVersionsAreNotDownloadedAgainAndTheCapHolds) {
  TempDir cache;
  const std::string weights = "/adapters/loras/sql/adapter_model.safetensors";
  const int before = proxy_gets(weights);
  {
    AdapterCatalog first(demo_config(), options(cache.path(), true));
    ASSERT_TRUE(claim_error(first, "sql").is_ok());
  }
  EXPECT_EQ(proxy_gets(weights), before + 1);
  {
    AdapterCatalog restarted(demo_config(), options(cache.path(), true));  // a new process's host memory
    ASSERT_TRUE(claim_error(restarted, "sql").is_ok());
  }
  EXPECT_EQ(proxy_gets(weights), before + 1) << "the cached version was downloaded again";
  // A cap below the four adapters' bytes: least recently used entries go, the total stays under the cap.
  auto size_of = [](const std::string& name) {
    return static_cast<int64_t>(fs::file_size(kDemo + "/adapters/" + name + "/adapter_model.safetensors") +
                                fs::file_size(kDemo + "/adapters/" + name + "/adapter_config.json"));
  };
  int64_t all = 0;
  for (const char* name : kAdapters) all += size_of(name);
  TempDir capped;
  auto o = options(capped.path());
  o.remote.cache_max_bytes = size_of("calc") + 1000000;
  ASSERT_LT(o.remote.cache_max_bytes, all);
  AdapterCatalog catalog(demo_config(), o);
  for (const char* name : kAdapters) ASSERT_TRUE(claim_error(catalog, name).is_ok()) << name;
  int entries = 0;
  int64_t bytes = 0;
  for (const auto& d : fs::directory_iterator(capped.path())) {
    ++entries;
    for (const auto& f : fs::directory_iterator(d.path())) bytes += static_cast<int64_t>(f.file_size());
  }
  EXPECT_LT(entries, 4);
  EXPECT_LE(bytes, o.remote.cache_max_bytes);
  o.remote.cache_max_bytes = size_of("sql") / 2;  // smaller than any adapter: a clear error
  TempDir tiny;
  o.remote.cache_dir = tiny.path();
  AdapterCatalog small(demo_config(), o);
  EXPECT_EQ(claim_error(small, "calc").code(), ErrorCode::kResourceExhausted);
}

TEST_F(S3Test, RequestUrlsNeverLeaveTheRoots) {
  TempDir cache;
  AdapterCatalog catalog(demo_config(), options(cache.path()));
  const std::vector<std::string> urls = {
      "s3://adapters/other/only-here", "s3://adapters/loras/../other/only-here", "s3://adapters/loras/%2e%2e/other",
      "s3://adapters/loras", "s3://adapters/loras/", "s3://adapters", "s3://another-bucket/loras/calc",
      "s3://adapters/lorasx/calc", "s3://adapters/loras//calc", "s3://adapters/loras/./calc", "/etc/passwd",
      "loras/calc", "s3://adapters/loras/calc\\..\\..", std::string("s3://adapters/loras/calc\0", 25)};
  for (const std::string& u : urls) {
    Status s = claim_error(catalog, u, AdapterSource::kS3);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << "\"" << u << "\": " << s.to_string();
  }
  for (const std::string n : {"..", "../other/only-here", "calc/../sql", "%2e%2e", "a b"})
    EXPECT_FALSE(claim_error(catalog, n).is_ok()) << n;
  EXPECT_TRUE(cache_files(cache.path()).empty());
}

}  // namespace
}  // namespace ls
