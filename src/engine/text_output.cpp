// text_output.cpp: incremental text with stop strings.
#include "engine/text_output.h"

#include <algorithm>

namespace ls {

TextOutput::TextOutput(const Tokenizer& tokenizer, bool skip_special_tokens, std::vector<std::string> stop_strings,
                       bool include_stop_string)
    : decoder_(tokenizer, skip_special_tokens), include_stop_(include_stop_string) {
  for (std::string& s : stop_strings)
    if (!s.empty()) stops_.push_back(std::move(s));
  for (const std::string& s : stops_) max_stop_ = std::max(max_stop_, s.size());
}

void TextOutput::check_stops(size_t old_size) {
  if (stops_.empty() || stop_ || !stops_active_) return;
  // A match that ended inside the old text would have been found before: new matches start after this.
  const size_t from = old_size + 1 > max_stop_ ? old_size + 1 - max_stop_ : 0;
  size_t best = std::string::npos;
  const std::string* which = nullptr;
  for (const std::string& s : stops_) {
    const size_t p = text_.find(s, from);
    if (p != std::string::npos && (p < best || (p == best && s.size() > which->size()))) {
      best = p;
      which = &s;
    }
  }
  if (!which) return;
  stop_ = *which;
  text_.resize(include_stop_ ? best + which->size() : best);
  sent_ = std::min(sent_, text_.size());
}

Result<std::string> TextOutput::add(int32_t token) {
  if (stop_) return std::string();
  LS_ASSIGN_OR_RETURN(std::string piece, decoder_.step(token));
  const size_t old = text_.size();
  text_ += piece;
  check_stops(old);
  return piece;
}

size_t TextOutput::held_back() const {
  if (stop_ || !stops_active_) return 0;
  size_t hold = 0;
  for (const std::string& s : stops_) {
    // The longest proper prefix of s that the text ends with.
    for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; --k) {
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

std::string TextOutput::take_ready() {
  const size_t ready = text_.size() - held_back();
  if (ready <= sent_) return std::string();
  std::string out = text_.substr(sent_, ready - sent_);
  sent_ = ready;
  return out;
}

Result<std::string> TextOutput::take_rest() {
  if (!stop_) {
    LS_ASSIGN_OR_RETURN(std::string tail, decoder_.finish());
    const size_t old = text_.size();
    text_ += tail;
    check_stops(old);
  }
  std::string out = sent_ < text_.size() ? text_.substr(sent_) : std::string();
  sent_ = text_.size();
  return out;
}

}  // namespace ls
