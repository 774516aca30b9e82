// text_output.h: TextOutput, one request's generated text as the engine builds it token by token: incremental
// detokenization (StreamDecoder) and stop strings matched on the text across token boundaries. Text that could
// still become the start of a stop string is held back, so a stream never shows a stop string it will then
// have to take back; on a match the text is cut before the stop string (or after it, with
// include_stop_str_in_output, vLLM's option).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ls {

class TextOutput {
 public:
  TextOutput(const Tokenizer& tokenizer, bool skip_special_tokens, std::vector<std::string> stop_strings,
             bool include_stop_string);

  // Adds one generated token; returns the text it completes (the decoder's incremental output, no hold-back).
  // After a stop string matched, further tokens add nothing.
  Result<std::string> add(int32_t token);
  // Stop strings are looked for only while active (a request's min_tokens holds them off); text added while
  // inactive is not searched later, as in vLLM.
  void set_stops_active(bool active) { stops_active_ = active; }
  // The stop string that matched, if one did.
  const std::optional<std::string>& matched_stop() const { return stop_; }
  // Text not sent yet that can no longer become part of a stop string; marks it sent.
  std::string take_ready();
  // At the end of generation: the decoder's held-back tail and everything not sent yet; marks it sent.
  Result<std::string> take_rest();
  // All text so far (stop handling applied).
  const std::string& text() const { return text_; }

 private:
  void check_stops(size_t old_size);
  size_t held_back() const;

  StreamDecoder decoder_;
  std::vector<std::string> stops_;
  bool include_stop_;
  size_t max_stop_ = 0;
  std::string text_;
  size_t sent_ = 0;
  std::optional<std::string> stop_;
  bool stops_active_ = true;
};

}  // namespace ls
