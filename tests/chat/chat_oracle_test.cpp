// chat_oracle_test.cpp: every template in tests/data/chat_templates, rendered on every conversation of
// conversations.json, must equal jinja2 configured as transformers configures it (render_oracle.py, run with
// the test venv's python) byte for byte; a conversation the oracle rejects must be rejected by us too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "chat/chat_template.h"
#include "support/test_files.h"

namespace ls::chat {
namespace {

namespace fs = std::filesystem;

const fs::path kDataDir = fs::path(LS_TEST_DATA) / "chat_templates";

using ls::testing::read_text;

OrderedJson read_json(const fs::path& p) { return OrderedJson::parse(read_text(p)); }

std::tm fixed_time(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%d %H:%M:%S");
  tm.tm_isdst = -1;
  std::mktime(&tm);  // fills tm_wday and tm_yday
  return tm;
}

// Runs the oracle once over all templates and conversations; results[template][case].
class ChatOracle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    conversations_ = read_json(kDataDir / "conversations.json");
    OrderedJson job;
    job["now"] = conversations_["now"];
    job["cases"] = conversations_["cases"];
    job["templates"] = OrderedJson::object();
    for (const auto& entry : fs::directory_iterator(kDataDir)) {
      if (entry.path().extension() != ".jinja") continue;
      const std::string name = entry.path().stem().string();
      OrderedJson tokens = conversations_["special_tokens"];
      for (const auto& [prefix, over] : conversations_["special_token_overrides"].items())
        if (name.rfind(prefix, 0) == 0) tokens.update(over);
      job["templates"][name] = {{"source", read_text(entry.path())}, {"special_tokens", tokens}};
      if (conversations_["extra_cases"].contains(name))
        job["templates"][name]["extra_cases"] = conversations_["extra_cases"][name];
    }
    templates_ = job["templates"];
    snippets_ = read_json(kDataDir / "snippets.json");
    job["snippets"] = snippets_;
    const fs::path dir = fs::temp_directory_path() / ("ls_chat_oracle_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "job.json", std::ios::binary) << job.dump();
    const char* python = std::getenv("LS_VENV_PYTHON");
    ASSERT_TRUE(python && fs::exists(python))
        << "LS_VENV_PYTHON must name the test venv's python (scripts/setup-venv.sh builds it)";
    const std::string cmd = std::string(python) + " " + LS_SOURCE_DIR + "/tests/chat/render_oracle.py " +
                            (dir / "job.json").string() + " " + (dir / "out.json").string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const OrderedJson out = read_json(dir / "out.json");
    results_ = out["templates"];
    snippet_results_ = out["snippets"];
    fs::remove_all(dir);
  }

  static inline OrderedJson conversations_;
  static inline OrderedJson templates_;
  static inline OrderedJson results_;
  static inline OrderedJson snippets_;
  static inline OrderedJson snippet_results_;
};

// Small templates exercising one interpreter feature each (whitespace control, literals, operators, filters,
// tests, loops, macros, errors) against jinja2.
TEST_F(ChatOracle, SnippetsMatchJinja2) {
  ASSERT_EQ(snippets_.size(), snippet_results_.size());
  RenderOptions options;
  const std::tm now = fixed_time(conversations_["now"].get<std::string>());
  options.clock = [now] { return now; };
  int same = 0;
  for (size_t i = 0; i < snippets_.size(); ++i) {
    const std::string source = snippets_[i]["source"].get<std::string>();
    const OrderedJson& expected = snippet_results_[i];
    SCOPED_TRACE("snippet " + std::to_string(i) + ": " + source);
    std::vector<std::pair<std::string, Value>> vars;
    for (const auto& [k, v] : snippets_[i]["variables"].items()) vars.emplace_back(k, json_to_value(v));
    auto tmpl = Template::compile(source);
    Result<std::string> got = tmpl.is_ok() ? tmpl.value().render(vars, options) : Result<std::string>(tmpl.status());
    if (snippets_[i].contains("ours")) {
      // A documented difference from jinja2 (the snippet's "why"): we must do exactly what "ours" says.
      const std::string ours = snippets_[i]["ours"].get<std::string>();
      if (ours == "error") {
        EXPECT_FALSE(got.is_ok());
      } else {
        ASSERT_TRUE(got.is_ok()) << got.status().to_string();
        EXPECT_EQ(got.value(), ours);
      }
      ++same;
      continue;
    }
    if (expected["ok"].get<bool>()) {
      if (!got.is_ok()) {
        ADD_FAILURE() << "jinja2 rendered " << expected["text"] << ", we failed: " << got.status().to_string();
        continue;
      }
      EXPECT_EQ(got.value(), expected["text"].get<std::string>());
      same += got.value() == expected["text"].get<std::string>();
    } else {
      EXPECT_FALSE(got.is_ok()) << "jinja2 failed (" << expected["error"].get<std::string>() << ") but we rendered: "
                                << got.value();
      same += !got.is_ok();
    }
  }
  std::printf("chat oracle: %d of %zu snippets agree with jinja2 (or with a documented difference)\n", same,
              snippets_.size());
}

TEST_F(ChatOracle, EveryTemplateMatchesJinja2OnEveryConversation) {
  ASSERT_GE(templates_.size(), 40u);
  RenderOptions options;
  const std::tm now = fixed_time(conversations_["now"].get<std::string>());
  options.clock = [now] { return now; };
  int identical = 0, both_failed = 0, total = 0;
  std::map<std::string, int> mismatches;
  std::map<std::string, std::pair<int, int>> per_template;  // identical, rejected by both
  for (const auto& [name, spec] : templates_.items()) {
    std::vector<std::pair<std::string, std::string>> tokens;
    for (const auto& [k, v] : spec["special_tokens"].items()) tokens.emplace_back(k, v.get<std::string>());
    auto tmpl = ChatTemplate::from_source(spec["source"].get<std::string>(), tokens);
    ASSERT_TRUE(tmpl.is_ok()) << name << ": " << tmpl.status().to_string();
    tmpl.value().set_render_options(options);
    OrderedJson cases = conversations_["cases"];
    if (spec.contains("extra_cases"))
      for (const auto& c : spec["extra_cases"]) cases.push_back(c);
    for (const auto& c : cases) {
      const std::string case_name = c["name"].get<std::string>();
      SCOPED_TRACE(name + " / " + case_name);
      const OrderedJson& expected = results_[name][case_name];
      const OrderedJson tools = c.contains("tools") ? c["tools"] : OrderedJson();
      const OrderedJson kwargs = c.contains("kwargs") ? c["kwargs"] : OrderedJson::object();
      auto got = tmpl.value().render(c["messages"], c.value("add_generation_prompt", false), tools, kwargs);
      ++total;
      if (expected["ok"].get<bool>()) {
        if (!got.is_ok()) {
          ADD_FAILURE() << "jinja2 rendered it, we failed: " << got.status().to_string();
          ++mismatches[name];
          continue;
        }
        EXPECT_EQ(got.value(), expected["text"].get<std::string>());
        if (got.value() == expected["text"].get<std::string>()) {
          ++identical;
          ++per_template[name].first;
        } else {
          ++mismatches[name];
        }
      } else {
        EXPECT_FALSE(got.is_ok()) << "jinja2 failed (" << expected["error"].get<std::string>()
                                  << ") but we rendered:\n" << got.value();
        if (!got.is_ok()) {
          ++both_failed;
          ++per_template[name].second;
        } else {
          ++mismatches[name];
        }
      }
    }
  }
  std::printf("chat oracle: %zu templates x %zu conversations (+ template-specific ones), %d renders: %d byte-identical, "
              "%d rejected by both, %d differ\n",
              templates_.size(), conversations_["cases"].size(), total, identical, both_failed,
              total - identical - both_failed);
  for (const auto& [name, counts] : per_template)
    std::printf("  %-40s %2d identical, %2d rejected by both\n", name.c_str(), counts.first, counts.second);
  for (const auto& [name, n] : mismatches) std::printf("  %s: %d differ\n", name.c_str(), n);
}

// Loading from model directories (tokenizer_config.json with its special tokens) renders as the oracle does
// with the same template and tokens.
TEST_F(ChatOracle, ModelDirectoriesLoadTemplateAndSpecialTokens) {
  for (const char* model : {"llama3", "qwen3", "oracle-llama"}) {
    auto tmpl = ChatTemplate::from_model_dir((kDataDir / "models" / model).string());
    ASSERT_TRUE(tmpl.is_ok()) << model << ": " << tmpl.status().to_string();
    const OrderedJson config = read_json(kDataDir / "models" / model / "tokenizer_config.json");
    for (const auto& [name, text] : tmpl.value().special_tokens()) {
      const OrderedJson& v = config[name];
      EXPECT_EQ(text, v.is_string() ? v.get<std::string>() : v["content"].get<std::string>()) << model << " " << name;
    }
    const OrderedJson messages = conversations_["cases"][1]["messages"];
    auto got = tmpl.value().render(messages, true, OrderedJson(), OrderedJson::object());
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_FALSE(got.value().empty());
  }
  auto llama3 = ChatTemplate::from_model_dir((kDataDir / "models" / "llama3").string());
  ASSERT_TRUE(llama3.is_ok());
  auto got = llama3.value().render(OrderedJson::parse(R"([{"role":"user","content":" Hi "}])"), true, OrderedJson(),
                                   OrderedJson::object());
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(got.value(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

}  // namespace
}  // namespace ls::chat
