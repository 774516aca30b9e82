// adapter_catalog_test.cpp: the adapter host tier on the demo model's adapters: names and paths from requests
// never leave the --adapter-dir roots (a battery of escape attempts, symlinks included), corrupt adapters fail
// their requests with a clear error and are not kept, changed files load again under a new key, concurrent
// first requests share one load, LRU eviction never drops a claimed adapter, and a slow load (its
// adapter_config.json a FIFO nobody writes yet) does not hold up requests for other adapters in the engine.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/generate.h"
#include "lora/adapter_catalog.h"
#include "support/test_files.h"

namespace ls {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";

const ModelConfig& demo_config() {
  static ModelConfig c = load_model_config(kDemo + "/base").value();
  return c;
}

void copy_adapter(const std::string& name, const std::string& to) {
  fs::create_directories(to);
  for (const char* f : {"adapter_config.json", "adapter_model.safetensors"})
    fs::copy_file(kDemo + "/adapters/" + name + "/" + f, to + "/" + f, fs::copy_options::overwrite_existing);
}

std::shared_ptr<AdapterClaim> wait_loaded(const std::shared_ptr<AdapterClaim>& c) {
  for (int i = 0; i < 2000 && !c->ready() && !c->failed(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return c;
}

struct Roots {
  TempDir root, outside;
  Roots() {
    copy_adapter("calc", root.file("calc"));
    copy_adapter("upper", root.file("upper"));
    copy_adapter("sql", outside.file("secret"));  // a valid adapter outside the roots: must never load
    fs::create_directory_symlink(outside.file("secret"), root.file("dirlink"));
    fs::create_directories(root.file("filelink"));
    fs::create_symlink(outside.file("secret/adapter_config.json"), root.file("filelink/adapter_config.json"));
    fs::create_symlink(outside.file("secret/adapter_model.safetensors"), root.file("filelink/adapter_model.safetensors"));
  }
  AdapterCatalogOptions options() const {
    AdapterCatalogOptions o;
    o.roots = {root.path()};
    return o;
  }
};

TEST(AdapterCatalog, EscapeAttemptsAreRefused) {
  Roots r;
  AdapterCatalog catalog(demo_config(), r.options());
  const std::string out = r.outside.file("secret");
  const std::vector<std::string> names = {
      "..", ".", "../calc", "calc/../../secret", "/etc/passwd", out, "..%2Fsecret", "%2e%2e%2fsecret",
      "calc%00", std::string("calc\0x", 6), std::string(300, 'a'), "calc/", "\\..\\secret", "dirlink", "filelink",
      " calc", "calc\n", "~", "..\\..\\etc\\passwd", "calc/./../upper", "org/../secret"};
  for (const std::string& n : names) {
    auto c = catalog.claim(n, AdapterSource::kName);
    EXPECT_FALSE(c.is_ok()) << "name \"" << n << "\" was accepted";
    if (!c.is_ok()) {
      EXPECT_TRUE(c.status().code() == ErrorCode::kInvalidArgument || c.status().code() == ErrorCode::kNotFound);
    }
  }
  const std::vector<std::string> locals = {out, "../" + fs::path(r.outside.path()).filename().string() + "/secret",
                                           "dirlink", "filelink", "/", r.root.path(), "calc/../..", "/etc",
                                           "calc%2F..%2F..", std::string("calc\0", 5)};
  for (const std::string& p : locals) EXPECT_FALSE(catalog.claim(p, AdapterSource::kLocal).is_ok()) << "local \"" << p << "\"";
  for (const char* h : {"../../etc", "org/../x", "/abs/path", "org/name/extra", "org/..@main"})
    EXPECT_FALSE(catalog.claim(h, AdapterSource::kHub).is_ok()) << "hub \"" << h << "\"";
  // What is inside works, by name and as a local path.
  EXPECT_TRUE(wait_loaded(catalog.claim("calc", AdapterSource::kName).value())->ready());
  EXPECT_TRUE(wait_loaded(catalog.claim("upper", AdapterSource::kLocal).value())->ready());
  EXPECT_TRUE(wait_loaded(catalog.claim(r.root.file("calc"), AdapterSource::kLocal).value())->ready());
  EXPECT_EQ(catalog.stats().loads, 2u) << "calc by name and by path is one load";
}

TEST(AdapterCatalog, CorruptAdaptersFailClearlyAndAreNotKept) {
  Roots r;
  AdapterCatalog catalog(demo_config(), r.options());
  struct Bad {
    std::string name, expect;
    std::function<void(const std::string&)> make;
  };
  const std::vector<Bad> bad = {
      {"truncated", "", [](const std::string& d) {
         copy_adapter("calc", d);
         fs::resize_file(d + "/adapter_model.safetensors", fs::file_size(d + "/adapter_model.safetensors") / 2);
       }},
      {"badjson", "JSON", [](const std::string& d) {
         copy_adapter("calc", d);
         testing::write_text(d + "/adapter_config.json", "{\"r\": 32, ");
       }},
      {"dora", "DoRA", [](const std::string& d) {
         copy_adapter("calc", d);
         std::string cfg = testing::read_text(d + "/adapter_config.json");
         cfg.replace(cfg.find("\"use_dora\": false"), 17, "\"use_dora\": true");
         testing::write_text(d + "/adapter_config.json", cfg);
       }},
      {"otherbase", "", [](const std::string& d) {
         fs::create_directories(d);
         const std::string src = std::string(LS_SOURCE_DIR) + "/tests/data/oracle/llama/adapters/all_r16";
         for (const char* f : {"adapter_config.json", "adapter_model.safetensors"}) fs::copy_file(src + "/" + f, d + "/" + f);
       }},
      {"noweights", "missing", [](const std::string& d) {
         copy_adapter("calc", d);
         fs::remove(d + "/adapter_model.safetensors");
       }},
  };
  for (const Bad& b : bad) {
    b.make(r.root.file(b.name));
    auto c = wait_loaded(catalog.claim(b.name, AdapterSource::kName).value());
    ASSERT_TRUE(c->failed()) << b.name << " loaded";
    EXPECT_FALSE(c->error().message().empty());
    if (!b.expect.empty()) {
      EXPECT_NE(c->error().message().find(b.expect), std::string::npos) << c->error().message();
    }
    EXPECT_NE(c->error().code(), ErrorCode::kInternal) << b.name;
    // Not cached as good: the next request tries again, and a fixed adapter then loads.
    auto again = wait_loaded(catalog.claim(b.name, AdapterSource::kName).value());
    EXPECT_TRUE(again->failed()) << b.name;
    copy_adapter("calc", r.root.file(b.name));
    EXPECT_TRUE(wait_loaded(catalog.claim(b.name, AdapterSource::kName).value())->ready()) << b.name;
  }
  EXPECT_EQ(catalog.stats().load_failures, 2 * bad.size());
}

TEST(AdapterCatalog, ChangedFilesLoadAgainUnderANewKey) {
  Roots r;
  AdapterCatalog catalog(demo_config(), r.options());
  auto first = wait_loaded(catalog.claim("calc", AdapterSource::kName).value());
  ASSERT_TRUE(first->ready());
  auto same = wait_loaded(catalog.claim("calc", AdapterSource::kName).value());
  EXPECT_EQ(same->adapter()->key, first->adapter()->key) << "unchanged files reuse the load";
  copy_adapter("upper", r.root.file("calc"));
  auto changed = wait_loaded(catalog.claim("calc", AdapterSource::kName).value());
  ASSERT_TRUE(changed->ready());
  EXPECT_NE(changed->adapter()->key, first->adapter()->key);
  EXPECT_NE(changed->adapter()->content_hash, first->adapter()->content_hash);
  EXPECT_TRUE(first->ready()) << "a request holding the old load keeps it";
}

TEST(AdapterCatalog, ConcurrentFirstRequestsShareOneLoad) {
  Roots r;
  AdapterCatalog catalog(demo_config(), r.options());
  std::vector<std::shared_ptr<AdapterClaim>> claims(8);
  std::vector<std::thread> threads;
  for (auto& c : claims) threads.emplace_back([&] { c = catalog.claim("calc", AdapterSource::kName).value(); });
  for (auto& t : threads) t.join();
  for (auto& c : claims) EXPECT_TRUE(wait_loaded(c)->ready());
  EXPECT_EQ(catalog.stats().loads, 1u);
}

TEST(AdapterCatalog, LruEvictionKeepsClaimedAdapters) {
  Roots r;
  for (const char* n : {"reverse", "sql"}) copy_adapter(n, r.root.file(n));
  AdapterCatalogOptions o = r.options();
  o.max_cpu_loras = 2;
  AdapterCatalog catalog(demo_config(), o);
  auto held = wait_loaded(catalog.claim("calc", AdapterSource::kName).value());
  for (const char* n : {"upper", "reverse", "sql"}) wait_loaded(catalog.claim(n, AdapterSource::kName).value());
  const AdapterCatalogStats s = catalog.stats();
  EXPECT_LE(s.host_adapters, 2);
  EXPECT_GE(s.evictions, 2u);
  auto again = wait_loaded(catalog.claim("calc", AdapterSource::kName).value());
  EXPECT_EQ(again->adapter()->key, held->adapter()->key) << "the held adapter was evicted";
}

TEST(AdapterCatalog, ASlowLoadDoesNotHoldUpOtherAdapters) {
  Roots r;
  const std::string slow = r.root.file("slow");
  fs::create_directories(slow);
  fs::copy_file(kDemo + "/adapters/upper/adapter_model.safetensors", slow + "/adapter_model.safetensors");
  ASSERT_EQ(::mkfifo((slow + "/adapter_config.json").c_str(), 0600), 0);
  ServedModelOptions mo;
  mo.model = kDemo + "/base";
  auto served = ServedModel::load(mo).value();
  EngineOptions eo;
  eo.kv_cache_bytes = 32 << 20;
  eo.adapter_dirs = {r.root.path()};
  auto engine = Engine::create(*served, eo).value();
  engine->start();
  auto request = [&](const std::string& adapter) {
    EngineRequest q;
    q.prompt = served->codec().encode("What is 2 + 40?", true).value();
    q.adapter = adapter;
    q.params.stop.max_new_tokens = 8;
    return q;
  };
  auto slow_stream = engine->submit(request("slow")).value();
  // While "slow" cannot even read its config, calc requests run to the end.
  auto calc = generate_all(*engine, {request("calc"), request("calc")});
  ASSERT_TRUE(calc.is_ok());
  EXPECT_EQ(calc.value()[0].text, "42");
  EXPECT_FALSE(slow_stream->take().has_value()) << "the slow adapter's request produced output before its load";
  // Now let the load go on: open the FIFO's other end (the loader, which reads each file once, is blocked
  // opening it) and send the config through.
  const std::string config = testing::read_text(kDemo + "/adapters/upper/adapter_config.json");
  std::ofstream fifo(slow + "/adapter_config.json");
  fifo << config;
  fifo.close();
  RequestUpdate u = slow_stream->wait();
  while (!u.finished) u = slow_stream->wait();
  EXPECT_NE(u.reason, FinishReason::kError) << u.error.to_string();
  engine->shutdown(0);
}

}  // namespace
}  // namespace ls
