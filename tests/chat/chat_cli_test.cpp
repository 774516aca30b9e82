// chat_cli_test.cpp: `loraserve chat-template --model DIR` prints exactly the rendered prompt (no newline added)
// for a JSON request on stdin, passes extra keys to the template, and fails with one line on stderr and a
// non-zero exit for bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/test_files.h"

namespace {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code;
  std::string out;
  std::string err;
};

RunResult run_cli(const std::string& model_dir, const std::string& stdin_text) {
  const char* bin = std::getenv("LS_LORASERVE_BIN");
  EXPECT_TRUE(bin != nullptr) << "LS_LORASERVE_BIN must name the loraserve binary";
  const fs::path dir = fs::temp_directory_path() / ("ls_chat_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "in.json", std::ios::binary) << stdin_text;
  const std::string cmd = std::string(bin ? bin : "loraserve") + " chat-template --model '" + model_dir + "' < '" +
                          (dir / "in.json").string() + "' > '" + (dir / "out").string() + "' 2> '" +
                          (dir / "err").string() + "'";
  const int status = std::system(cmd.c_str());
  RunResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, ls::testing::read_text(dir / "out"),
              ls::testing::read_text(dir / "err")};
  fs::remove_all(dir);
  return r;
}

const std::string kModels = std::string(LS_TEST_DATA) + "/chat_templates/models/";

TEST(ChatCli, PrintsThePromptExactly) {
  const RunResult r = run_cli(kModels + "qwen3", R"({"messages": [{"role": "system", "content": "S"},
      {"role": "user", "content": "héllo 👋"}], "add_generation_prompt": true, "enable_thinking": false})");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhéllo 👋<|im_end|>\n<|im_start|>assistant\n"
            "<think>\n\n</think>\n\n");
  EXPECT_EQ(r.err, "");
}

TEST(ChatCli, PassesToolsToTheTemplate) {
  const RunResult r = run_cli(kModels + "qwen3", R"({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}}]})");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Key order of the tool schema is kept, as in Python.
  EXPECT_NE(r.out.find(R"({"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}})"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.substr(r.out.size() - 11), "<|im_end|>\n");
}

TEST(ChatCli, BadInputIsOneLineOnStderr) {
  for (const char* body : {"not json", "[]", R"({"messages": []})", R"({"messages": "x"})",
                           R"({"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": "yes"})"}) {
    const RunResult r = run_cli(kModels + "qwen3", body);
    EXPECT_NE(r.exit_code, 0) << body;
    EXPECT_EQ(r.out, "") << body;
    ASSERT_FALSE(r.err.empty()) << body;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << body << ": " << r.err;
  }
  const RunResult missing = run_cli(kModels + "does-not-exist", R"({"messages": [{"role": "user", "content": "x"}]})");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("does-not-exist"), std::string::npos) << missing.err;
}

TEST(ChatCli, TemplateErrorsAreReported) {
  const fs::path dir = fs::temp_directory_path() / ("ls_chat_cli_model_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "chat_template.jinja") << "{{ raise_exception('Conversation roles must alternate') }}";
  const RunResult r = run_cli(dir.string(), R"({"messages": [{"role": "user", "content": "x"}]})");
  fs::remove_all(dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Conversation roles must alternate"), std::string::npos) << r.err;
}

}  // namespace
