// commands.h: the `loraserve` subcommands. Each family of subcommands lives in its own cmd_*.cpp and registers
// itself on the CLI11 app; main.cpp only calls the registrars. A subcommand's run function returns the process
// exit code and prints one clear line on stderr for any failure.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace ls::app {

// Set by a registrar's callback: the function main() runs once parsing succeeded.
using CommandRunner = std::function<int()>;

void register_model_commands(CLI::App& app, CommandRunner& runner);      // logits, generate
void register_tokenizer_commands(CLI::App& app, CommandRunner& runner);  // tokenize, detokenize
void register_chat_commands(CLI::App& app, CommandRunner& runner);       // chat-template
void register_serve_command(CLI::App& app, CommandRunner& runner);       // serve

}  // namespace ls::app
