// bpe_model.h: the BPE model of tokenizer.json (Hugging Face models/bpe): vocab, merges (as "a b" strings or
// [a, b] pairs), unk_token with fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix and
// end_of_word_suffix. Merging runs a heap over a linked list of symbols (O(n log n) per word) and words
// shorter than 256 bytes are cached per thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/hash_tables.h"

namespace ls {

class BpeModel {
 public:
  static Result<std::unique_ptr<BpeModel>> from_json(const Json& config);

  // Appends the ids of one pre-tokenized piece. raw_bytes: the piece is raw bytes still to be mapped to the
  // byte-level alphabet (see enable_raw_bytes). Fails only when unk_token is needed but not in the vocab.
  Status tokenize(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out) const;
  // The same, also appending each token's byte range [start, end) within piece (no cache).
  Status tokenize_with_offsets(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out,
                               std::vector<std::pair<uint32_t, uint32_t>>& spans) const;

  // Prepares lookups keyed by raw bytes, so a deferred ByteLevel pre-tokenizer can skip the mapping.
  void enable_raw_bytes();

  int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  // The token text of id, or nullptr when the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_size() const { return vocab_.size(); }

 private:
  BpeModel() = default;
  Status load_vocab(const Json& vocab);
  Status load_merges(const Json& merges);
  // spans: when not null, receives each token's byte range within piece.
  Status merge_word(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out,
                    std::vector<std::pair<uint32_t, uint32_t>>* spans = nullptr) const;
  // starts: when not null, receives for each merged symbol the index of its first initial symbol.
  void merge_all(std::vector<int32_t>& ids, std::vector<int32_t>* starts = nullptr) const;

  StringIdMap vocab_;
  std::vector<std::string> tokens_;            // vocab strings in JSON order
  std::vector<int32_t> dense_id_to_index_;     // id -> index in tokens_, when ids are dense enough
  std::unordered_map<int32_t, int32_t> sparse_id_to_index_;
  PairMap merges_;

  std::string unk_token_;
  bool has_unk_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  std::array<int32_t, 256> byte_fallback_ids_{};

  // Raw-byte mode.
  bool raw_enabled_ = false;
  StringIdMap raw_vocab_;                  // vocab keyed by the bytes the byte-level text stands for
  std::array<int32_t, 256> raw_byte_ids_{};  // id of the one-character token of each byte, or -1

  uint64_t cache_uid_ = 0;  // tells apart the per-thread caches of different models
};

}  // namespace ls
