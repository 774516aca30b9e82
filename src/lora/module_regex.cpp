// module_regex.cpp: PCRE2 compile-and-match for PEFT module patterns (patterns are tiny and matched a few
// hundred times per adapter load, so they are compiled per call).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lora/module_regex.h"

#include <pcre2.h>

#include <memory>

namespace ls {

namespace {

using CodePtr = std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)>;
using MatchPtr = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

Result<CodePtr> compile(const std::string& pattern, uint32_t options) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  CodePtr code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error_code,
                             &error_offset, nullptr),
               &pcre2_code_free);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return invalid_argument("bad regex \"" + pattern + "\" at offset " + std::to_string(error_offset) + ": " +
                            reinterpret_cast<const char*>(message));
  }
  return code;
}

// Runs the match; returns the pcre2_match code (>= 0 on a match) with match data filled.
Result<int> run(const pcre2_code* code, const std::string& pattern, const std::string& subject, MatchPtr& match) {
  const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0,
                             match.get(), nullptr);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
    return invalid_argument("regex \"" + pattern + "\" failed to match (error " + std::to_string(rc) + ")");
  return rc;
}

}  // namespace

Result<bool> regex_matches(const std::string& pattern, const std::string& subject, RegexAnchor anchor) {
  uint32_t options = PCRE2_UTF | PCRE2_ANCHORED;
  if (anchor == RegexAnchor::kFullMatch) options |= PCRE2_ENDANCHORED;
  LS_ASSIGN_OR_RETURN(CodePtr code, compile(pattern, options));
  MatchPtr match(pcre2_match_data_create_from_pattern(code.get(), nullptr), &pcre2_match_data_free);
  LS_ASSIGN_OR_RETURN(int rc, run(code.get(), pattern, subject, match));
  return rc >= 0;
}

Result<std::optional<std::string>> regex_capture(const std::string& pattern, const std::string& subject, int group) {
  LS_ASSIGN_OR_RETURN(CodePtr code, compile(pattern, PCRE2_UTF | PCRE2_ANCHORED));
  MatchPtr match(pcre2_match_data_create_from_pattern(code.get(), nullptr), &pcre2_match_data_free);
  LS_ASSIGN_OR_RETURN(int rc, run(code.get(), pattern, subject, match));
  if (rc <= group) return std::optional<std::string>();
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
  if (ovector[2 * group] == PCRE2_UNSET) return std::optional<std::string>();
  return std::optional<std::string>(subject.substr(ovector[2 * group], ovector[2 * group + 1] - ovector[2 * group]));
}

}  // namespace ls
