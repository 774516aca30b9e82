// chat_template_fuzz.cpp: libFuzzer target for template parsing and rendering. The input is a template source,
// optionally followed by a NUL byte and a JSON object whose keys become extra template variables. Each input
// is compiled and rendered on a fixed conversation (system, user, assistant with a tool call, tool result) with
// tools, under tight sandbox limits; any outcome but a crash, hang or sanitizer report is fine.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/chat_template.h"

namespace {

const ls::chat::OrderedJson& messages() {
  static const auto m = ls::chat::OrderedJson::parse(R"([
    {"role": "system", "content": "You are helpful. 日本語 👨‍👩‍👧"},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "need a tool",
     "tool_calls": [{"id": "a1b2c3d4e", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "{\"temp\": 21}"},
    {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
  ])");
  return m;
}

const ls::chat::OrderedJson& tools() {
  static const auto t = ls::chat::OrderedJson::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
    "required": ["city"]}}}])");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view source = input;
  ls::chat::OrderedJson kwargs = ls::chat::OrderedJson::object();
  if (const size_t nul = input.find('\0'); nul != std::string_view::npos) {
    source = input.substr(0, nul);
    auto parsed = ls::chat::OrderedJson::parse(input.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) kwargs = std::move(parsed);
    kwargs.erase("messages");
    kwargs.erase("tools");
    kwargs.erase("add_generation_prompt");
  }
  auto tmpl = ls::chat::ChatTemplate::from_source(std::string(source), {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  if (!tmpl.is_ok()) return 0;
  ls::chat::RenderOptions options;
  options.limits.max_output_bytes = 64 << 10;
  options.limits.max_steps = 200000;
  options.limits.max_loop_iterations = 20000;
  options.limits.max_collection_size = 20000;
  options.limits.max_call_depth = 16;
  options.clock = [] {
    std::tm tm{};
    tm.tm_year = 124, tm.tm_mon = 6, tm.tm_mday = 26, tm.tm_hour = 14;
    return tm;
  };
  tmpl.value().set_render_options(options);
  for (bool with_tools : {false, true}) {
    auto out = tmpl.value().render(messages(), with_tools, with_tools ? tools() : ls::chat::OrderedJson(), kwargs);
    (void)out;
  }
  return 0;
}
