// cmd_tokenizer.cpp: the `tokenize` and `detokenize` subcommands over a Hugging Face tokenizer.json.
// tokenize reads UTF-8 text on stdin and prints {"ids": [...]}; detokenize reads {"ids": [...]} and prints
// the text with no newline added. Any failure is one line on stderr and exit code 1.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace ls::app {
namespace {

struct TokenizerArgs {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

int fail(const Status& status) {
  std::fprintf(stderr, "loraserve: %s\n", status.to_string().c_str());
  return 1;
}

int run_tokenize(const TokenizerArgs& args) {
  auto tokenizer = Tokenizer::load(args.tokenizer);
  if (!tokenizer.is_ok()) return fail(tokenizer.status());
  const std::string text = read_stdin();
  auto ids = tokenizer.value()->encode(text, args.add_special_tokens);
  if (!ids.is_ok()) return fail(ids.status());
  std::string out = "{\"ids\": [";
  for (size_t i = 0; i < ids.value().size(); ++i) {
    if (i > 0) out.append(", ");
    out.append(std::to_string(ids.value()[i]));
  }
  out.append("]}\n");
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  LS_ASSIGN_OR_RETURN(const Json body, parse_json(text, "stdin"));
  const Json* list = find_field(body, "ids");
  if (!list || !list->is_array()) return invalid_argument("stdin must be {\"ids\": [integers]}");
  std::vector<int32_t> ids;
  ids.reserve(list->size());
  for (const Json& v : *list) {
    if (!v.is_number_integer() && !v.is_number_unsigned()) return invalid_argument("\"ids\" must hold integers");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id > INT32_MAX) return invalid_argument("token id " + v.dump() + " is out of range");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

int run_detokenize(const TokenizerArgs& args) {
  auto tokenizer = Tokenizer::load(args.tokenizer);
  if (!tokenizer.is_ok()) return fail(tokenizer.status());
  auto ids = parse_ids(read_stdin());
  if (!ids.is_ok()) return fail(ids.status());
  auto text = tokenizer.value()->decode(ids.value(), args.skip_special_tokens);
  if (!text.is_ok()) return fail(text.status());
  std::fwrite(text.value().data(), 1, text.value().size(), stdout);
  return 0;
}

}  // namespace

void register_tokenizer_commands(CLI::App& app, CommandRunner& runner) {
  static TokenizerArgs args;
  CLI::App* tokenize = app.add_subcommand("tokenize", "encode UTF-8 text from stdin, print {\"ids\": [...]}");
  tokenize->add_option("--tokenizer", args.tokenizer, "tokenizer.json")->required();
  tokenize->add_flag("--add-special-tokens", args.add_special_tokens, "apply the post-processor (BOS/EOS)");
  tokenize->callback([&runner] { runner = [] { return run_tokenize(args); }; });

  CLI::App* detokenize = app.add_subcommand("detokenize", "decode {\"ids\": [...]} from stdin, print the text");
  detokenize->add_option("--tokenizer", args.tokenizer, "tokenizer.json")->required();
  detokenize->add_flag("--skip-special-tokens", args.skip_special_tokens, "drop special tokens");
  detokenize->callback([&runner] { runner = [] { return run_detokenize(args); }; });
}

}  // namespace ls::app
