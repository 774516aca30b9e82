// text_output_test.cpp: TextOutput on the demo model's tokenizer: incremental text equals decoding, stop
// strings are found across token boundaries and never shown before the match is known.
#include <gtest/gtest.h>

#include "engine/text_output.h"

namespace ls {
namespace {

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo/base";

std::unique_ptr<Tokenizer> demo_tokenizer() {
  auto t = Tokenizer::load(kDemo + "/tokenizer.json");
  LS_CHECK(t.is_ok()) << t.status().to_string();
  return std::move(t).value();
}

// Feeds ids one by one; returns what take_ready() handed out step by step, then take_rest().
std::vector<std::string> feed(TextOutput& out, const std::vector<int32_t>& ids) {
  std::vector<std::string> chunks;
  for (int32_t id : ids) {
    EXPECT_TRUE(out.add(id).is_ok());
    chunks.push_back(out.take_ready());
    if (out.matched_stop()) break;
  }
  chunks.push_back(out.take_rest().value());
  return chunks;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

TEST(TextOutput, WithoutStopsEqualsDecode) {
  auto tok = demo_tokenizer();
  const std::string text = "def reverse(words):\n    return ' '.join(words[::-1])  # ünïcödé ✓";
  const std::vector<int32_t> ids = tok->encode(text, false).value();
  TextOutput out(*tok, true, {}, false);
  EXPECT_EQ(join(feed(out, ids)), tok->decode(ids, true).value());
}

TEST(TextOutput, StopAcrossTokensIsCutAndNeverShown) {
  auto tok = demo_tokenizer();
  const std::string text = "SELECT name FROM users; -- done";
  const std::vector<int32_t> ids = tok->encode(text, false).value();
  for (bool include : {false, true}) {
    TextOutput out(*tok, true, {"ROM us"}, include);
    const auto chunks = feed(out, ids);
    ASSERT_TRUE(out.matched_stop());
    EXPECT_EQ(*out.matched_stop(), "ROM us");
    EXPECT_EQ(join(chunks), include ? "SELECT name FROM us" : "SELECT name F");
    // Nothing handed out before the match was known may go past the cut.
    std::string shown;
    for (size_t i = 0; i + 2 < chunks.size(); ++i) shown += chunks[i];
    EXPECT_EQ(shown.find("ROM"), std::string::npos) << "include " << include;
  }
}

TEST(TextOutput, HoldsBackAPossibleStopPrefixThenReleasesIt) {
  auto tok = demo_tokenizer();
  const std::vector<int32_t> ids = tok->encode("abc xyz abd", false).value();
  TextOutput out(*tok, true, {"abd!"}, false);
  const auto chunks = feed(out, ids);
  EXPECT_FALSE(out.matched_stop());
  EXPECT_EQ(join(chunks), "abc xyz abd");
  std::string before_end;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) before_end += chunks[i];
  EXPECT_EQ(before_end, "abc xyz ");  // "abd" could have been the start of "abd!" until the end
}

TEST(TextOutput, EarliestOfSeveralStopsWins) {
  auto tok = demo_tokenizer();
  const std::vector<int32_t> ids = tok->encode("one two three four", false).value();
  TextOutput out(*tok, true, {"four", "two", "three"}, false);
  EXPECT_EQ(join(feed(out, ids)), "one ");
  EXPECT_EQ(*out.matched_stop(), "two");
}

}  // namespace
}  // namespace ls
