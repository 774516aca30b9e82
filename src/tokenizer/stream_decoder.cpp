// stream_decoder.cpp: incremental detokenization by prefix/read offsets over a short window of ids.
#include <algorithm>
#include <span>

#include "tokenizer/tokenizer.h"

namespace ls {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// Past this many undecided ids (text still ending in U+FFFD, e.g. a run of genuine U+FFFD characters), the
// window is cut at a token boundary before its last character so work stays linear.
constexpr size_t kMaxPendingIds = 64;
// How far back from the newest id to look for that boundary (a character spans at most 4 byte tokens).
constexpr size_t kBoundarySearch = 16;

bool ends_with_replacement(const std::string& s) {
  return s.size() >= kReplacement.size() && s.compare(s.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0;
}

}  // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

Result<std::string> StreamDecoder::step(int32_t id) {
  if (prefix_.empty() && !ids_.empty()) {
    LS_ASSIGN_OR_RETURN(std::string new_prefix, tokenizer_.decode(ids_, skip_special_tokens_));
    if (!ends_with_replacement(new_prefix)) {
      prefix_ = std::move(new_prefix);
      prefix_index_ = ids_.size();
    }
  }
  ids_.push_back(id);
  LS_ASSIGN_OR_RETURN(std::string text, tokenizer_.decode(ids_, skip_special_tokens_));
  if (ends_with_replacement(text)) {
    // The last character may be an incomplete UTF-8 sequence that later ids complete; hold it back.
    if (ids_.size() - prefix_index_ <= kMaxPendingIds) return std::string();
    return emit_stable_part(text);
  }
  if (text.size() <= prefix_.size()) return std::string();
  return advance(text, ids_.size());
}

// Emits the window's text from the end of the prefix, then starts a new window at the old read position
// (the usual prefix/read-offset scheme); `text` is the decode of ids_[0, read_index).
Result<std::string> StreamDecoder::advance(const std::string& text, size_t read_index) {
  // The window's text normally extends the prefix; if a decoder rewrote earlier text, resume after the
  // common part rather than fail.
  size_t common = 0;
  while (common < prefix_.size() && text[common] == prefix_[common]) ++common;
  while (common > 0 && (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) --common;
  std::string out = text.substr(common == prefix_.size() ? prefix_.size() : common);
  const size_t new_prefix_index = read_index - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  LS_ASSIGN_OR_RETURN(prefix_, tokenizer_.decode(std::span<const int32_t>(ids_.data(), new_prefix_index),
                                                 skip_special_tokens_));
  prefix_index_ = new_prefix_index;
  return out;
}

// Appending ids can only resolve a trailing incomplete UTF-8 sequence: at most 3 bytes, which a decoder may show
// as up to 3 U+FFFD (byte fallback gives one per byte), so everything before the last 3 U+FFFD of the decode is
// final. Emit up to the latest token boundary whose text is a prefix of that stable part; without one, keep
// waiting. (Holding back only the last U+FFFD once emitted the placeholder of a lead byte that the next byte
// tokens turned into an emoji: the tokenizer fuzzer's find.)
Result<std::string> StreamDecoder::emit_stable_part(const std::string& text) {
  size_t end = text.size();
  for (int i = 0; i < 3 && end >= kReplacement.size() &&
                  text.compare(end - kReplacement.size(), kReplacement.size(), kReplacement) == 0;
       ++i)
    end -= kReplacement.size();
  const std::string_view stable(text.data(), end);
  const size_t lowest = std::max(prefix_index_ + 1, ids_.size() > kBoundarySearch ? ids_.size() - kBoundarySearch : 0);
  for (size_t k = ids_.size() - 1; k >= lowest; --k) {
    LS_ASSIGN_OR_RETURN(std::string head, tokenizer_.decode(std::span<const int32_t>(ids_.data(), k),
                                                            skip_special_tokens_));
    if (head.size() > prefix_.size() && head.size() <= stable.size() && stable.compare(0, head.size(), head) == 0 &&
        head.compare(0, prefix_.size(), prefix_) == 0)
      return advance(head, k);
  }
  return std::string();
}

Result<std::string> StreamDecoder::finish() {
  LS_ASSIGN_OR_RETURN(std::string text, tokenizer_.decode(ids_, skip_special_tokens_));
  std::string out;
  if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0) out = text.substr(prefix_.size());
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return out;
}

}  // namespace ls
