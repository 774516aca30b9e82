// json_value.h: converts request JSON into template values (keeping object key order, as Python dicts do) and
// renders values as Python's json.dumps does for transformers' tojson filter (ensure_ascii, indent,
// separators, sort_keys).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "chat/value.h"

namespace ls::chat {

using OrderedJson = nlohmann::ordered_json;

Value json_to_value(const OrderedJson& j);

struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;          // per level, when has_indent
  std::string item_separator;  // ", " (or "," with an indent) unless given
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// json.dumps(value) with the given options; values JSON cannot represent (undefined, callables, namespaces,
// iterators) are an error, as are outputs above max_bytes.
Result<std::string> json_dumps(const Value& value, const JsonDumpOptions& options, size_t max_bytes);

}  // namespace ls::chat
