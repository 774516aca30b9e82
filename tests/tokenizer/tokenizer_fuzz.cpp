// tokenizer_fuzz.cpp: libFuzzer target for the tokenizer. The first byte picks what the rest is:
// even: a tokenizer.json to load (then encode and decode fixed inputs with it); odd: text and ids for the
// preloaded real tokenizers (encode, decode, stream decode). Built and run by scripts/fuzz-tokenizer.sh.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::unique_ptr<ls::Tokenizer>>& preloaded() {
  static std::vector<std::unique_ptr<ls::Tokenizer>> list = [] {
    std::vector<std::unique_ptr<ls::Tokenizer>> v;
    const std::string root = LS_SOURCE_DIR;
    for (const std::string path : {root + "/tests/data/tokenizers/tiny_llama/tokenizer.json",
                                   root + "/../shared/tokenizers/llama2/tokenizer.json",
                                   root + "/../shared/tokenizers/llama3/tokenizer.json"}) {
      auto t = ls::Tokenizer::load(path);
      if (t.is_ok()) v.push_back(std::move(t).value());
    }
    return v;
  }();
  return list;
}

void exercise(const ls::Tokenizer& tok, std::string_view text, std::string_view id_bytes) {
  for (bool special : {false, true}) {
    auto ids = tok.encode(text, special);
    if (!ids.is_ok()) continue;
    for (bool skip : {false, true}) {
      auto full = tok.decode(ids.value(), skip);
      ls::StreamDecoder stream(tok, skip);
      std::string streamed;
      bool ok = true;
      for (int32_t id : ids.value()) {
        auto chunk = stream.step(id);
        ok = ok && chunk.is_ok();
        if (chunk.is_ok()) streamed += chunk.value();
      }
      auto rest = stream.finish();
      if (ok && rest.is_ok() && full.is_ok() && streamed + rest.value() != full.value()) __builtin_trap();
    }
  }
  // Offsets: the same ids, each range inside the (repaired) input.
  auto plain = tok.encode(text, true);
  auto with_offsets = tok.encode_with_offsets(text, true);
  if (plain.is_ok() && with_offsets.is_ok()) {
    if (with_offsets->ids != plain.value() || with_offsets->offsets.size() != plain->size()) __builtin_trap();
    const size_t limit = ls::unicode::to_valid_utf8_lossy(text).size();
    for (const auto& [start, end] : with_offsets->offsets)
      if (start > end || end > limit) __builtin_trap();
  }
  std::vector<int32_t> raw;
  for (size_t i = 0; i + 4 <= id_bytes.size(); i += 4) {
    int32_t id;
    std::memcpy(&id, id_bytes.data() + i, 4);
    raw.push_back(id % 200000);
  }
  (void)tok.decode(raw, false);
  (void)tok.token_to_id(text);
  for (int32_t id : raw) (void)tok.id_to_token(id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto tok = ls::Tokenizer::load_from_json(rest);
    if (tok.is_ok()) {
      exercise(*tok.value(), "Hello world! <s> </s> 123 ﬁ é\xcc\x81 \xff  x\n\n", rest.substr(0, 64));
    }
    return 0;
  }
  for (const auto& tok : preloaded()) exercise(*tok, rest, rest);
  return 0;
}
