// tokenizer_oracle_test.cpp: our Tokenizer against Hugging Face `tokenizers` (the oracle, run by
// oracle.py from the project venv at test time) on the generated corpus: for every tokenizer under test,
// every corpus file as a whole and every line of it, the ids without and with special tokens, the byte offsets
// of the latter (encode_with_offsets), decode of the oracle's ids with and without skip_special_tokens, and the
// streaming detokenizer's output, must all be equal to the oracle's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/json.h"
#include "support/test_files.h"
#include "tokenizer/tokenizer.h"

namespace ls {
namespace {

namespace fs = std::filesystem;

using ls::testing::read_text;

// Runs the oracle once per test binary run (LS_TOKENIZER_ORACLE_REUSE=1 keeps an existing output).
const Json& manifest() {
  static const Json kManifest = [] {
    const fs::path out = fs::current_path() / "tokenizer_oracle";
    const char* reuse = std::getenv("LS_TOKENIZER_ORACLE_REUSE");
    if (!(reuse && std::string(reuse) == "1" && fs::exists(out / "manifest.json"))) {
      const char* python = std::getenv("LS_VENV_PYTHON");
      const std::string py = python ? python : std::string(LS_SOURCE_DIR) + "/.venv/bin/python";
      const std::string cmd = "\"" + py + "\" \"" + std::string(LS_SOURCE_DIR) + "/tests/tokenizer/oracle.py\" \"" +
                              std::string(LS_SOURCE_DIR) + "/../shared/tokenizers\" \"" + LS_TEST_DATA + "\" \"" +
                              out.string() + "\"";
      const int rc = std::system(cmd.c_str());
      if (rc != 0) return Json();
    }
    auto parsed = read_json_file((out / "manifest.json").string());
    return parsed.is_ok() ? parsed.value() : Json();
  }();
  return kManifest;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> items{text};
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    items.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return items;
}

std::string shorten(const std::string& s) { return s.size() > 200 ? s.substr(0, 200) + "...": s; }

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size() && i < 60; ++i) s += std::to_string(ids[i]) + " ";
  return s;
}

Result<std::string> stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  StreamDecoder stream(tok, skip);
  std::string text;
  for (int32_t id : ids) {
    LS_ASSIGN_OR_RETURN(std::string chunk, stream.step(id));
    text += chunk;
  }
  LS_ASSIGN_OR_RETURN(std::string rest, stream.finish());
  return text + rest;
}

struct Counts {
  size_t items = 0, failures = 0;
};

void check_item(const Tokenizer& tok, const std::string& where, const std::string& text, const Json& expected,
                Counts& counts) {
  ++counts.items;
  auto report = [&](const std::string& what) {
    if (++counts.failures <= 12) ADD_FAILURE() << where << ": " << what << "\n  text: " << shorten(text);
  };
  const auto want_plain = expected[0].get<std::vector<int32_t>>();
  const auto want_special = expected[1].get<std::vector<int32_t>>();
  const auto& want_decode = expected[2].get_ref<const std::string&>();
  const auto& want_decode_skip = expected[3].get_ref<const std::string&>();
  auto plain = tok.encode(text, false);
  if (!plain.is_ok() || plain.value() != want_plain) {
    return report("encode mismatch\n  want: " + ids_text(want_plain) + "\n  got:  " +
                  (plain.is_ok() ? ids_text(plain.value()) : plain.status().to_string()));
  }
  auto special = tok.encode(text, true);
  if (!special.is_ok() || special.value() != want_special) return report("encode(add_special_tokens) mismatch");
  auto with_offsets = tok.encode_with_offsets(text, true);
  if (!with_offsets.is_ok() || with_offsets->ids != want_special) return report("encode_with_offsets ids mismatch");
  const auto want_offsets = expected[4].get<std::vector<std::pair<uint32_t, uint32_t>>>();
  if (with_offsets->offsets != want_offsets) {
    size_t k = 0;
    while (k < want_offsets.size() && k < with_offsets->offsets.size() && want_offsets[k] == with_offsets->offsets[k]) ++k;
    auto pair_text = [](const std::vector<std::pair<uint32_t, uint32_t>>& v, size_t i) {
      return i < v.size() ? "(" + std::to_string(v[i].first) + "," + std::to_string(v[i].second) + ")" : std::string("none");
    };
    return report("offsets mismatch at token " + std::to_string(k) + " (id " +
                  (k < want_special.size() ? std::to_string(want_special[k]) : std::string("-")) + "): want " +
                  pair_text(want_offsets, k) + ", got " + pair_text(with_offsets->offsets, k));
  }
  for (bool skip : {false, true}) {
    const std::string& want = skip ? want_decode_skip : want_decode;
    auto got = tok.decode(want_special, skip);
    if (!got.is_ok() || got.value() != want) {
      return report(std::string("decode mismatch, skip=") + (skip ? "1" : "0") + "\n  want: " + shorten(want) +
                    "\n  got:  " + (got.is_ok() ? shorten(got.value()) : got.status().to_string()));
    }
    auto streamed = stream_all(tok, want_special, skip);
    if (!streamed.is_ok() || streamed.value() != want) {
      return report(std::string("stream mismatch, skip=") + (skip ? "1" : "0") + "\n  want: " + shorten(want) +
                    "\n  got:  " + (streamed.is_ok() ? shorten(streamed.value()) : streamed.status().to_string()));
    }
  }
}

class OracleTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleTest, MatchesHuggingFaceOnCorpus) {
  const Json& m = manifest();
  ASSERT_TRUE(m.is_array()) << "the oracle (tests/tokenizer/oracle.py via LS_VENV_PYTHON) did not run";
  const Json* entry = nullptr;
  for (const Json& e : m)
    if (e["name"] == GetParam()) entry = &e;
  ASSERT_NE(entry, nullptr) << "no oracle output for " << GetParam();
  auto tok = Tokenizer::load((*entry)["tokenizer"].get<std::string>());
  ASSERT_TRUE(tok.is_ok()) << tok.status().to_string();
  Counts counts;
  size_t files = 0;
  for (const Json& f : (*entry)["files"]) {
    const std::string corpus = f["corpus"].get<std::string>();
    const std::vector<std::string> items = split_lines(read_text(corpus));
    std::ifstream expected(f["expected"].get<std::string>(), std::ios::binary);
    std::string line;
    size_t index = 0;
    while (std::getline(expected, line)) {
      ASSERT_LT(index, items.size()) << "oracle has more records than " << corpus << " has lines";
      auto record = parse_json(line, "oracle record");
      ASSERT_TRUE(record.is_ok()) << record.status().to_string();
      const std::string where = fs::path(corpus).filename().string() + (index == 0 ? " (whole file)" : ":" + std::to_string(index));
      check_item(*tok.value(), where, items[index], record.value(), counts);
      ++index;
    }
    ASSERT_EQ(index, items.size()) << "oracle records do not cover " << corpus;
    ++files;
  }
  std::printf("[ oracle ] %s: %zu files, %zu items (whole files + lines), %zu mismatches\n", GetParam().c_str(),
              files, counts.items, counts.failures);
  EXPECT_EQ(counts.failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, OracleTest,
                         ::testing::Values("llama3", "qwen3", "llama2", "tiny_llama", "llama2_metaspace_first",
                                           "llama2_metaspace_added", "llama2_normalizers", "llama2_whitespace_unk",
                                           "qwen3_gpt2", "qwen3_splits"));

}  // namespace
}  // namespace ls
