// limits.h: the sandbox bounds one render runs under. A template that exceeds one fails with
// kResourceExhausted instead of using unbounded time or memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ls::chat {

struct Limits {
  size_t max_output_bytes = 1 << 20;      // rendered text, and any one string built while rendering
  int64_t max_loop_iterations = 1000000;  // for-loop iterations over the whole render
  int64_t max_steps = 20000000;           // expressions and statements evaluated over the whole render
  int max_call_depth = 64;                // nested macro calls
  size_t max_collection_size = 1000000;   // items in one list, dict or range
};

}  // namespace ls::chat
