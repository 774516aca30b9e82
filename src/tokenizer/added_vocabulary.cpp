// added_vocabulary.cpp: added-token ids, tries and the split around added tokens.
#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/bpe_model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

bool same_token(const AddedToken& a, const AddedToken& b) {
  return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip &&
         a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special;
}

// The last character of text[0, end) (valid UTF-8), or 0 when empty.
char32_t char_before(std::string_view text, size_t end) {
  if (end == 0) return 0;
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  size_t len;
  return unicode::decode(text, start, &len);
}

// Start of the whitespace run that ends at end.
size_t whitespace_run_start(std::string_view text, size_t end) {
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t len;
    if (!unicode::is_whitespace(unicode::decode(text, start, &len))) break;
    end = start;
  }
  return end;
}

// End of the whitespace run that starts at pos.
size_t whitespace_run_end(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t len;
    if (!unicode::is_whitespace(unicode::decode(text, pos, &len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

Result<std::vector<AddedToken>> parse_added_tokens(const Json& list) {
  if (!list.is_array()) return invalid_argument("\"added_tokens\" must be an array");
  std::vector<AddedToken> tokens;
  tokens.reserve(list.size());
  for (const Json& item : list) {
    if (!item.is_object()) return invalid_argument("each added token must be an object");
    AddedToken t;
    LS_ASSIGN_OR_RETURN(t.content, required_string(item, "content"));
    LS_ASSIGN_OR_RETURN(t.single_word, optional_bool(item, "single_word", false));
    LS_ASSIGN_OR_RETURN(t.lstrip, optional_bool(item, "lstrip", false));
    LS_ASSIGN_OR_RETURN(t.rstrip, optional_bool(item, "rstrip", false));
    LS_ASSIGN_OR_RETURN(t.normalized, optional_bool(item, "normalized", true));
    LS_ASSIGN_OR_RETURN(t.special, optional_bool(item, "special", false));
    tokens.push_back(std::move(t));
  }
  return tokens;
}

void AddedVocabulary::Trie::insert(std::string_view text, int32_t id) {
  int32_t node = 0;
  for (char ch : text) {
    const auto b = static_cast<uint8_t>(ch);
    auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), b,
                               [](const std::pair<uint8_t, int32_t>& e, uint8_t v) { return e.first < v; });
    if (it != children.end() && it->first == b) {
      node = it->second;
      continue;
    }
    const int32_t child = static_cast<int32_t>(nodes_.size());
    children.insert(it, {b, child});
    nodes_.emplace_back();
    node = child;
  }
  if (!text.empty()) first_bytes_[static_cast<uint8_t>(text[0])] = true;
  nodes_[node].token_id = id;
}

std::pair<int32_t, size_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best{-1, pos};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto b = static_cast<uint8_t>(text[i]);
    const auto& children = nodes_[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), b,
                               [](const std::pair<uint8_t, int32_t>& e, uint8_t v) { return e.first < v; });
    if (it == children.end() || it->first != b) break;
    node = it->second;
    if (nodes_[node].token_id >= 0) best = {nodes_[node].token_id, i + 1};
  }
  return best;
}

Status AddedVocabulary::add_tokens(const std::vector<AddedToken>& tokens, const BpeModel& model,
                                   const Normalizer* normalizer) {
  const int32_t model_size = static_cast<int32_t>(model.vocab_size());
  int32_t next_id = model_size;
  if (!by_id_.empty()) {
    int32_t max = INT32_MIN;
    for (const auto& [id, token] : by_id_) max = std::max(max, id);
    next_id = (max >= model_size || model_size == 0) ? max + 1 : model_size;
  }
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    if (auto it = by_content_.find(token.content); it != by_content_.end()) {
      auto same = by_id_.find(it->second);
      if (same != by_id_.end() && same_token(same->second, token)) continue;
    }
    int32_t id = token_to_id(token.content);
    if (id < 0) id = model.token_to_id(token.content);
    if (id < 0) {
      if (next_id == INT32_MAX) return invalid_argument("too many added tokens");
      id = next_id++;
    }
    if (token.normalized && normalizer) {
      std::string form = token.content;
      bool at_origin = true;
      LS_RETURN_IF_ERROR(normalizer->normalize(form, at_origin));
      if (form != token.content) normalized_form_[id] = std::move(form);
    }
    by_content_[token.content] = id;
    if (token.special) special_set_.insert(token.content);
    by_id_[id] = token;
  }
  rebuild_tries();
  return Status::ok();
}

void AddedVocabulary::rebuild_tries() {
  raw_trie_ = Trie();
  normalized_trie_ = Trie();
  // Sorted by id so a pattern shared by two tokens resolves the same way every time.
  std::vector<int32_t> ids;
  for (const auto& [id, token] : by_id_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    const AddedToken& token = by_id_.at(id);
    if (token.normalized) {
      auto form = normalized_form_.find(id);
      normalized_trie_.insert(form != normalized_form_.end() ? form->second : token.content, id);
    } else {
      raw_trie_.insert(token.content, id);
    }
  }
}

void AddedVocabulary::split(const Piece& piece, bool normalized, std::vector<Piece>& out) const {
  const Trie& trie = normalized ? normalized_trie_ : raw_trie_;
  const std::string_view text = piece.text;
  auto emit_text = [&](size_t start, size_t end) {
    if (end > start) emit_sub_piece(piece, start, end, out);
  };
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.may_start(static_cast<uint8_t>(text[pos]))) {
      ++pos;
      continue;
    }
    auto [id, stop] = trie.longest_at(text, pos);
    if (id < 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    pos = stop;  // the automaton resumes after the match, whatever the flags do
    const AddedToken& token = by_id_.at(id);
    if (token.single_word) {
      const bool start_space = start == 0 || !unicode::is_word_char(char_before(text, start));
      size_t len;
      const bool stop_space = stop == text.size() || !unicode::is_word_char(unicode::decode(text, stop, &len));
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(whitespace_run_start(text, start), start_offset);
    if (token.rstrip) stop = whitespace_run_end(text, stop);
    if (start_offset < start) emit_text(start_offset, start);
    Piece& p = out.emplace_back();
    p.text = token.content;
    p.added_id = id;
    if (piece.tracked) {
      p.tracked = true;
      p.align = slice_alignment(piece.align, start, stop);
    }
    start_offset = stop;
  }
  if (start_offset < text.size()) emit_text(start_offset, text.size());
}

int32_t AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? -1 : it->second;
}

const std::string* AddedVocabulary::id_to_token(int32_t id) const {
  if (auto form = normalized_form_.find(id); form != normalized_form_.end()) return &form->second;
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second.content;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

size_t AddedVocabulary::count_not_in(const BpeModel& model) const {
  size_t n = 0;
  for (const auto& [content, id] : by_content_) n += model.token_to_id(content) < 0;
  return n;
}

}  // namespace ls
