// tokenizer_unit_test.cpp: the Tokenizer on small hand-written tokenizer.json files: loading errors that
// name the component, merges in both formats, ignore_merges, byte fallback and unk handling, added-token
// flags, invalid UTF-8 input, long inputs staying fast, offsets, and the streaming detokenizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace ls {
namespace {

// A character-level SentencePiece-style vocabulary: letters, "▁", merges towards "▁ab" and "abc".
Json sp_config() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* t : {"<unk>", "<s>", "</s>"}) vocab[t] = id++;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = id++;
  }
  for (const char* t : {"▁", "a", "b", "c", "ab", "▁a", "▁ab", "abc", "bc"}) vocab[t] = id++;
  Json config = {
      {"version", "1.0"},
      {"added_tokens", Json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                                    {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                    {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}})},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", Json::array({
          {{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}}},
      {"pre_tokenizer", nullptr},
      {"post_processor", {{"type", "TemplateProcessing"},
                          {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                          {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "Sequence"}, {"decoders", Json::array({
          {{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
          {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                 {"byte_fallback", true}, {"vocab", vocab},
                 {"merges", Json::array({"▁ a", "a b", "▁a b", "b c", "ab c"})}}}};
  return config;
}

std::unique_ptr<Tokenizer> make(const Json& config) {
  auto t = Tokenizer::from_json(config);
  EXPECT_TRUE(t.is_ok()) << t.status().to_string();
  return t.is_ok() ? std::move(t).value() : nullptr;
}

std::vector<int32_t> encode(const Tokenizer& t, std::string_view text, bool special = false) {
  auto ids = t.encode(text, special);
  EXPECT_TRUE(ids.is_ok()) << ids.status().to_string();
  return ids.is_ok() ? ids.value() : std::vector<int32_t>{};
}

TEST(TokenizerLoad, ErrorsNameTheComponent) {
  auto missing = Tokenizer::load("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);

  EXPECT_EQ(Tokenizer::load_from_json("{\"model\": ").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::load_from_json("[]").is_ok());
  EXPECT_FALSE(Tokenizer::load_from_json("{}").is_ok());

  Json c = sp_config();
  c["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  auto r = Tokenizer::from_json(c);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.status().message().find("unsupported normalizer type \"Precompiled\""), std::string::npos)
      << r.status().message();

  c = sp_config();
  c["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("unsupported pre_tokenizer type \"UnicodeScripts\""),
            std::string::npos);
  c = sp_config();
  c["decoder"] = {{"type", "CTC"}};
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("unsupported decoder type \"CTC\""), std::string::npos);
  c = sp_config();
  c["model"]["type"] = "Unigram";
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("unsupported model type \"Unigram\""), std::string::npos);
  c = sp_config();
  c["model"]["dropout"] = 0.1;
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("dropout"), std::string::npos);
  c = sp_config();
  c["model"]["merges"].push_back("a zz");
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("\"zz\" is not in the vocab"), std::string::npos);
  c = sp_config();
  c["model"]["merges"].push_back("a b c");
  EXPECT_FALSE(Tokenizer::from_json(c).is_ok());
  c = sp_config();
  c["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(Tokenizer::from_json(c).status().message().find("pre_tokenizer"), std::string::npos);
  c = sp_config();
  c["model"]["vocab"]["x"] = -5;
  EXPECT_FALSE(Tokenizer::from_json(c).is_ok());
}

TEST(TokenizerLoad, DeepNestingIsAnError) {
  Json n = {{"type", "Lowercase"}};
  for (int i = 0; i < 100; ++i) n = {{"type", "Sequence"}, {"normalizers", Json::array({n})}};
  Json c = sp_config();
  c["normalizer"] = n;
  EXPECT_FALSE(Tokenizer::from_json(c).is_ok());
}

TEST(TokenizerBpe, MergesAsStringsOrPairsAgree) {
  auto strings = make(sp_config());
  Json c = sp_config();
  Json pairs = Json::array();
  for (const Json& m : c["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    pairs.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  c["model"]["merges"] = pairs;
  auto as_pairs = make(c);
  ASSERT_TRUE(strings && as_pairs);
  EXPECT_EQ(encode(*strings, "ab abc cab"), encode(*as_pairs, "ab abc cab"));
  const int32_t id_ab = strings->token_to_id("▁ab"), id_c = strings->token_to_id("c");
  EXPECT_EQ(encode(*strings, "abc"), (std::vector<int32_t>{id_ab, id_c}));  // "▁ab" outranks "bc"
  EXPECT_EQ(encode(*strings, "abc", true).front(), 1);                      // BOS from the template
}

TEST(TokenizerBpe, ByteFallbackAndFusedUnk) {
  auto t = make(sp_config());
  ASSERT_TRUE(t);
  // "é" is not in the vocab: its two UTF-8 bytes become <0xC3><0xA9>.
  const auto ids = encode(*t, "é");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], t->token_to_id("<0xC3>"));
  EXPECT_EQ(ids[2], t->token_to_id("<0xA9>"));
  EXPECT_EQ(t->decode(ids, false).value(), "é");

  Json c = sp_config();
  c["model"]["byte_fallback"] = false;
  auto unk = make(c);
  ASSERT_TRUE(unk);
  EXPECT_EQ(encode(*unk, "aéèb"), (std::vector<int32_t>{unk->token_to_id("▁a"), 0, unk->token_to_id("b")}));
  c["model"]["fuse_unk"] = false;
  auto unfused = make(c);
  EXPECT_EQ(encode(*unfused, "aéèb"), (std::vector<int32_t>{unk->token_to_id("▁a"), 0, 0, unk->token_to_id("b")}));
}

TEST(TokenizerOffsets, ThroughNormalizersByteFallbackAndTemplate) {
  auto t = make(sp_config());
  ASSERT_TRUE(t);
  using Offsets = std::vector<std::pair<uint32_t, uint32_t>>;
  // "▁ab▁abc": the prepended "▁" aligns with "a", the replaced space with itself; BOS gets (0, 0).
  auto e = t->encode_with_offsets("ab abc", true);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->ids, encode(*t, "ab abc", true));
  EXPECT_EQ(e->offsets, (Offsets{{0, 0}, {0, 2}, {2, 5}, {5, 6}}));
  // Byte-fallback tokens of one character all cover the whole character.
  e = t->encode_with_offsets("é", false);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->ids, encode(*t, "é"));
  EXPECT_EQ(e->offsets, (Offsets{{0, 2}, {0, 2}, {0, 2}}));
  // Added tokens cover their match.
  e = t->encode_with_offsets("a</s>b", false);
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->ids, encode(*t, "a</s>b"));
  ASSERT_EQ(e->offsets.size(), e->ids.size());
  EXPECT_EQ(e->offsets[1], (std::pair<uint32_t, uint32_t>{1, 5}));
  // Invalid UTF-8 is repaired first; offsets then refer to the repaired text and stay in range.
  e = t->encode_with_offsets("a\xff\xfe" "b", false);
  ASSERT_TRUE(e.is_ok());
  for (const auto& [start, end] : e->offsets) EXPECT_TRUE(start <= end && end <= 8u);
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeWords) {
  Json c = sp_config();
  c["model"]["vocab"]["▁abcabc"] = 1000;
  c["model"]["ignore_merges"] = true;
  auto t = make(c);
  EXPECT_EQ(encode(*t, "abcabc"), (std::vector<int32_t>{1000}));
  c["model"]["ignore_merges"] = false;
  EXPECT_NE(encode(*make(c), "abcabc"), (std::vector<int32_t>{1000}));
}

TEST(TokenizerBpe, SubwordPrefixAndWordSuffix) {
  // continuing_subword_prefix: non-first characters are looked up as "##x"; a merge drops b's prefix.
  Json prefix = {{"model", {{"type", "BPE"}, {"continuing_subword_prefix", "##"},
                            {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}, {"##c", 3}}}, {"merges", {"a ##b"}}}}};
  auto p = make(prefix);
  ASSERT_TRUE(p);
  EXPECT_EQ(encode(*p, "abc"), (std::vector<int32_t>{2, 3}));
  // end_of_word_suffix: the last character is looked up as "x</w>".
  Json suffix = {{"model", {{"type", "BPE"}, {"end_of_word_suffix", "</w>"},
                            {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}}}, {"merges", {"a b</w>"}}}}};
  auto w = make(suffix);
  ASSERT_TRUE(w);
  EXPECT_EQ(encode(*w, "ab"), (std::vector<int32_t>{2}));
  EXPECT_EQ(encode(*w, "abb"), (std::vector<int32_t>{0, 3, 1}));
  // dropout 0 never skips a merge, so it is accepted like null.
  suffix["model"]["dropout"] = 0.0;
  EXPECT_TRUE(Tokenizer::from_json(suffix).is_ok());
}

TEST(TokenizerAdded, SpecialTokensSplitAndSkip) {
  auto t = make(sp_config());
  const auto ids = encode(*t, "ab</s>ab");
  EXPECT_EQ(ids, (std::vector<int32_t>{t->token_to_id("▁ab"), 2, t->token_to_id("▁ab")}));
  EXPECT_EQ(t->decode(ids, false).value(), "ab</s> ab");
  EXPECT_EQ(t->decode(ids, true).value(), "ab ab");
  EXPECT_TRUE(t->is_special_id(2));
  EXPECT_EQ(t->id_to_token(2).value_or(""), "</s>");
  EXPECT_EQ(t->id_to_token(t->token_to_id("▁ab")).value_or(""), "▁ab");
  EXPECT_FALSE(t->id_to_token(123456).has_value());
  EXPECT_EQ(t->vocab_size(), 259u + 9u);
  EXPECT_FALSE(t->is_special_id(t->token_to_id("a")));
  // Unknown ids are skipped, as in `tokenizers`.
  EXPECT_EQ(t->decode(std::vector<int32_t>{t->token_to_id("▁ab"), 999999, -3}, false).value(), "ab");
}

TEST(TokenizerAdded, LstripRstripSingleWord) {
  Json c = sp_config();
  c["added_tokens"].push_back({{"id", 5000}, {"content", "[X]"}, {"lstrip", true}, {"rstrip", true},
                               {"normalized", false}, {"special", true}});
  c["added_tokens"].push_back({{"id", 5001}, {"content", "cab"}, {"single_word", true}, {"normalized", false}});
  auto t = make(c);
  const int32_t x = t->token_to_id("[X]"), cab = t->token_to_id("cab");
  ASSERT_GE(x, 0);
  EXPECT_EQ(encode(*t, "a  [X]  b"), (std::vector<int32_t>{t->token_to_id("▁a"), x, t->token_to_id("▁"),
                                                           t->token_to_id("b")}));
  const auto with_cab = encode(*t, "a cab b");
  EXPECT_NE(std::find(with_cab.begin(), with_cab.end(), cab), with_cab.end());
  for (int32_t id : encode(*t, "acab b")) EXPECT_NE(id, cab);
}

TEST(TokenizerInput, InvalidUtf8IsReplacedNotFatal) {
  auto t = make(sp_config());
  const std::string bad = std::string("a\xff\xc3") + "b\xe2\x82";
  const auto ids = encode(*t, bad);
  EXPECT_EQ(ids, encode(*t, "a\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD"));
  EXPECT_TRUE(t->encode(std::string("\0\0a", 3), true).is_ok());
}

TEST(TokenizerInput, LongWordIsFast) {
  auto t = make(sp_config());
  std::mt19937 rng(7);
  std::string text;
  for (int i = 0; i < 100'000; ++i) text.push_back("abc"[rng() % 3]);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = encode(*t, text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(ids.empty());
  EXPECT_LT(seconds, 2.0) << "100 kB without spaces took " << seconds << " s";
  EXPECT_EQ(t->decode(ids, false).value(), text);
}

TEST(TokenizerInput, ConcurrentEncodeAgrees) {
  auto t = make(sp_config());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(std::string(i % 7, 'a') + " abc " + std::to_string(i) + " é" + std::string(i % 5, 'c'));
  std::vector<std::vector<int32_t>> want;
  for (const std::string& s : texts) want.push_back(encode(*t, s));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          auto ids = t->encode(texts[(i + k) % texts.size()], false);
          if (!ids.is_ok() || ids.value() != want[(i + k) % texts.size()]) ++mismatches[k];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

std::string stream(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip, std::vector<std::string>* chunks) {
  StreamDecoder d(t, skip);
  std::string out;
  for (int32_t id : ids) {
    auto chunk = d.step(id);
    EXPECT_TRUE(chunk.is_ok());
    chunks->push_back(chunk.value());
    out += chunk.value();
  }
  out += d.finish().value();
  return out;
}

TEST(StreamDecoder, MatchesFullDecodeAndKeepsCharactersWhole) {
  auto t = make(sp_config());
  const auto ids = encode(*t, "ab é</s>abc  cé", true);
  for (bool skip : {false, true}) {
    std::vector<std::string> chunks;
    EXPECT_EQ(stream(*t, ids, skip, &chunks), t->decode(ids, skip).value());
    for (const std::string& c : chunks) {
      // No chunk ends inside a UTF-8 character: "é" arrives whole, after both byte tokens.
      EXPECT_EQ(c.find("\xC3\xA9") == std::string::npos && c.find('\xC3') != std::string::npos, false) << c;
    }
  }
}

TEST(StreamDecoder, MetaspaceFirstTokenLeadingSpace) {
  Json c = sp_config();
  c["normalizer"] = nullptr;
  c["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  c["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}};
  auto t = make(c);
  const auto ids = encode(*t, "ab ab", false);
  std::vector<std::string> chunks;
  EXPECT_EQ(stream(*t, ids, false, &chunks), "ab ab");
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.front(), "ab");  // the first token's "▁" is not a space
  EXPECT_EQ(t->decode(ids, false).value(), "ab ab");
}

// Found by the fuzzer: more than 64 ids whose text ends in U+FFFD (here a run of genuine U+FFFD from invalid
// input bytes) used to be flushed whole, cutting an emoji whose bytes were still arriving; the stream must
// still equal the full decode.
TEST(StreamDecoder, LongRunsOfReplacementCharactersStayExact) {
  auto t = Tokenizer::load(std::string(LS_TEST_DATA) + "/tokenizers/tiny_llama/tokenizer.json");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const std::string text =
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x3A\xFF\xFF"
      "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x5F"
      "\x30\x01\x71\xB2\x46\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"
      "\xFF\xFF\xFF\xFF\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7\x20\x65\xCC\x81\x20\xC4\xB0";
  const auto ids = t.value()->encode(text, false).value();
  ASSERT_GT(ids.size(), 100u);
  for (bool skip : {false, true}) {
    std::vector<std::string> chunks;
    EXPECT_EQ(stream(*t.value(), ids, skip, &chunks), t.value()->decode(ids, skip).value());
  }
}

// Also the fuzzer's: with byte fallback an incomplete UTF-8 sequence decodes as one U+FFFD per byte, so after a
// long run of genuine U+FFFD (Llama 2's piece 29137) the lead byte of an emoji (<0xF0>) showed as a U+FFFD that the
// flush emitted for good; the next three byte tokens then made the emoji, and the stream had one U+FFFD too many.
TEST(StreamDecoder, ByteFallbackLeadBytesAfterLongReplacementRunsStayExact) {
  auto t = Tokenizer::load(std::string(LS_SOURCE_DIR) + "/../shared/tokenizers/llama2/tokenizer.json");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  const int32_t kReplacementPiece = 29137;                          // "\uFFFD"
  const std::vector<int32_t> emoji = {0xF0 + 3, 0x9F + 3, 0x91 + 3, 0xA8 + 3};  // <0xF0><0x9F><0x91><0xA8>
  for (int run = 60; run <= 200; ++run) {  // the emoji arrives at every phase of the window's flushes
    std::vector<int32_t> ids(static_cast<size_t>(run), kReplacementPiece);
    ids.insert(ids.end(), emoji.begin(), emoji.end());
    ids.insert(ids.end(), 3, kReplacementPiece);
    ASSERT_NE(t.value()->decode(ids, false).value().find("\xF0\x9F\x91\xA8"), std::string::npos);
    std::vector<std::string> chunks;
    EXPECT_EQ(stream(*t.value(), ids, false, &chunks), t.value()->decode(ids, false).value()) << run;
  }
}

}  // namespace
}  // namespace ls
