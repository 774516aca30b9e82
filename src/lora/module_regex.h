// module_regex.h: Python-`re`-compatible matching for PEFT's module patterns, through PCRE2. Only the two forms
// PEFT uses: fullmatch and match-at-start.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"

namespace ls {

enum class RegexAnchor { kFullMatch, kMatchAtStart };

// Whether `pattern` matches `subject` (re.fullmatch or re.match); a pattern that does not compile is an error.
Result<bool> regex_matches(const std::string& pattern, const std::string& subject, RegexAnchor anchor);

// Group `group` of a match at the start of subject (re.match(...).group(n)), or nullopt when it does not match.
Result<std::optional<std::string>> regex_capture(const std::string& pattern, const std::string& subject, int group);

}  // namespace ls
