// tokenizer.h: Tokenizer, a Hugging Face tokenizer.json loaded for encoding and decoding with exactly the
// ids and text of the `tokenizers` library (BPE models only), and StreamDecoder for incremental output.
//
// Input text that is not valid UTF-8 is repaired first: each invalid sequence becomes U+FFFD, as Rust's
// String::from_utf8_lossy does (Python callers of `tokenizers` can only pass valid text). Truncation and
// padding settings in the file are ignored: callers get every id. Unicode data: regexes run on PCRE2 10.42
// (Unicode 14) and normalizers on utf8proc; where `tokenizers`' own tables differ (newer for regex classes
// and lowercase, older for normalization), generated delta tables (regex.cpp, normalizer.cpp) make the
// results agree; regenerate them with tests/tokenizer/gen_*_delta.py if those libraries change.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ls {

class AddedVocabulary;
class BpeModel;
class Decoder;
class Normalizer;
class PostProcessor;
class PreTokenizer;
struct Piece;

// Token ids with the byte range of the input each came from.
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
};

class Tokenizer {
 public:
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Loads a tokenizer.json file; kNotFound when it does not exist, kInvalidArgument when malformed,
  // kUnsupported (naming the component) for a component type we do not implement.
  static Result<std::unique_ptr<Tokenizer>> load(const std::string& path);
  static Result<std::unique_ptr<Tokenizer>> load_from_json(std::string_view json_text);
  static Result<std::unique_ptr<Tokenizer>> from_json(const Json& config);

  // Encodes one sequence. add_special_tokens applies the post-processor (e.g. BOS). Thread-safe.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens) const;

  // Encodes one sequence and reports, per id, the byte range [start, end) of `text` it comes from, as
  // `tokenizers` computes offsets (Rust Encoding::get_offsets, byte referential): through every normalizer and
  // pre-tokenizer; special tokens the post-processor adds get (0, 0); a ByteLevel post-processor with
  // trim_offsets drops leading and trailing spaces by whole characters (as Python's `tokenizers` does). Invalid UTF-8 is repaired first and the offsets then refer
  // to the repaired text. Slower than encode(); for /tokenize. Thread-safe.
  Result<Encoding> encode_with_offsets(std::string_view text, bool add_special_tokens) const;

  // Decodes ids; unknown ids are skipped, as in `tokenizers`. Thread-safe.
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  // -1 when absent. Added tokens first, then the model's vocab.
  int32_t token_to_id(std::string_view token) const;
  // The token's text (an added token's, else the vocab's), or nullopt for an unknown id.
  std::optional<std::string> id_to_token(int32_t id) const;
  // Whether id is an added token marked special (dropped by skip_special_tokens).
  bool is_special_id(int32_t id) const;
  // Model vocab plus added tokens that are not in it (Hugging Face get_vocab_size(with_added_tokens=true)).
  size_t vocab_size() const;

 private:
  Tokenizer();
  // Added-token split, normalizer and pre-tokenizer: the pieces the model tokenizes.
  Status split_pieces(Piece whole, std::vector<Piece>& pieces) const;
  Status encode_piece_list(std::string_view text, std::vector<int32_t>& ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<AddedVocabulary> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
};

// Turns a stream of ids into text chunks. Each chunk is valid UTF-8 and never ends inside a character, and
// the concatenation of all chunks plus finish() equals tokenizer.decode(all ids). It keeps a short window of
// recent ids and emits the difference between decoding the window with and without the newest ids (the
// prefix/read-offset method of Hugging Face DecodeStream and vLLM), so context-dependent decoders (Metaspace
// dropping the first space, Strip, byte fallback) come out right.
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);

  // Adds one id; returns the newly complete text (possibly empty).
  Result<std::string> step(int32_t id);
  // Text held back at the end (e.g. a trailing U+FFFD that could still be completed); call once at the end.
  Result<std::string> finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_tokens_;
  Result<std::string> advance(const std::string& text, size_t read_index);
  Result<std::string> emit_stable_part(const std::string& text);

  std::vector<int32_t> ids_;  // the window
  std::string prefix_;        // decode of ids_[0, prefix_index_)
  size_t prefix_index_ = 0;
};

}  // namespace ls
