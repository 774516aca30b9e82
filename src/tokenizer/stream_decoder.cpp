// stream_decoder.cpp: incremental detokenization by prefix/read offsets over a short window of ids.
#include "tokenizer/tokenizer.h"

namespace ls {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// Past this many undecided ids (text still ending in U+FFFD), emit anyway so work stays linear.
constexpr size_t kMaxPendingIds = 64;

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
  const bool undecided = ends_with_replacement(text) && ids_.size() - prefix_index_ <= kMaxPendingIds;
  if (text.size() <= prefix_.size() || undecided) return std::string();
  // The window's text normally extends the prefix; if a decoder rewrote earlier text, resume after the
  // common part rather than fail.
  size_t common = 0;
  while (common < prefix_.size() && text[common] == prefix_[common]) ++common;
  while (common > 0 && (static_cast<unsigned char>(text[common]) & 0xC0) == 0x80) --common;
  std::string out = text.substr(common == prefix_.size() ? prefix_.size() : common);
  const size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  LS_ASSIGN_OR_RETURN(prefix_, tokenizer_.decode(ids_, skip_special_tokens_));
  prefix_index_ = new_prefix_index;
  return out;
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
