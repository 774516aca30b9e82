// template.h: a compiled Jinja template (the public interpreter API). Compiling parses the source and checks
// that every filter and test it names exists, as jinja2 does when it compiles; rendering runs the interpreter
// in the sandbox with the given variables.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/interpreter.h"
#include "chat/limits.h"
#include "chat/value.h"

namespace ls::chat {

// The local time now (what transformers' strftime_now formats).
std::tm local_time_now();

struct RenderOptions {
  Limits limits;
  Clock clock = local_time_now;
};

class Template {
 public:
  static Result<Template> compile(std::string_view source);

  Result<std::string> render(const std::vector<std::pair<std::string, Value>>& variables,
                             const RenderOptions& options = RenderOptions()) const;

 private:
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace ls::chat
