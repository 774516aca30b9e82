// added_vocabulary.h: tokenizer.json's added_tokens (Hugging Face AddedVocabulary): id assignment as
// `tokenizers` does it on load, and the split of input text around them, leftmost-longest, with the
// lstrip/rstrip/single_word flags. Tokens with normalized=false match the raw text; those with
// normalized=true match the normalized text, in their normalized form. Matching walks a byte trie.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/hash_tables.h"
#include "tokenizer/piece.h"

namespace ls {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  // Adds tokens in order (ids: the model's id for the same text, else the next free one; the "id" field
  // of the file is not used, as in `tokenizers`). normalizer may be null.
  Status add_tokens(const std::vector<AddedToken>& tokens, const BpeModel& model, const Normalizer* normalizer);

  // Splits text into added-token pieces and text pieces. normalized selects which trie (and token set)
  // applies. Appends to out; at_origin carries to the first piece when it starts at offset 0.
  void split(const Piece& piece, bool normalized, std::vector<Piece>& out) const;

  bool has_normalized_tokens() const { return !normalized_trie_.empty(); }
  bool has_raw_tokens() const { return !raw_trie_.empty(); }

  int32_t token_to_id(std::string_view content) const;
  // The text decode uses for id (the normalized form for normalized tokens), or nullptr.
  const std::string* id_to_token(int32_t id) const;
  bool is_special(std::string_view text) const { return special_set_.find(text) != special_set_.end(); }
  const AddedToken* token(int32_t id) const;
  size_t size() const { return by_content_.size(); }
  // Number of added token texts that the model's vocab does not have.
  size_t count_not_in(const BpeModel& model) const;

 private:
  struct TrieNode {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token_id = -1;                               // a token ends here
  };
  class Trie {
   public:
    void insert(std::string_view text, int32_t id);
    bool empty() const { return nodes_.size() <= 1; }
    // Longest token starting at pos: its id and end, or id -1.
    std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const;
    bool may_start(uint8_t b) const { return first_bytes_[b]; }

   private:
    std::vector<TrieNode> nodes_{1};
    bool first_bytes_[256] = {};
  };

  void rebuild_tries();

  std::unordered_map<std::string, int32_t> by_content_;
  std::unordered_map<int32_t, AddedToken> by_id_;
  std::unordered_map<int32_t, std::string> normalized_form_;  // for normalized tokens whose form differs
  std::unordered_set<std::string, StringViewHash, std::equal_to<>> special_set_;
  Trie raw_trie_;
  Trie normalized_trie_;
};

// Parses the "added_tokens" array.
Result<std::vector<AddedToken>> parse_added_tokens(const Json& list);

}  // namespace ls
