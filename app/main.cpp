// main.cpp: the `loraserve` command. Parses the command line with CLI11 and runs the chosen subcommand; the
// subcommands themselves live in cmd_*.cpp (commands.h).
#include <unistd.h>

#include <cstdio>

#include "commands.h"
#include "fatal_signal.h"

int main(int argc, char** argv) {
  ls::app::install_fatal_signal_report();
  // An alarm set by whoever exec'd us survives exec, and SIGALRM's default action would end the server silently
  // (a supervisor's runtime that crashed between fork and exec left one: see integrations/ray server.py).
  ::alarm(0);
  CLI::App app{"loraserve: multi-LoRA LLM inference server"};
  app.require_subcommand(1);
  ls::app::CommandRunner runner;
  ls::app::register_model_commands(app, runner);
  ls::app::register_tokenizer_commands(app, runner);
  ls::app::register_chat_commands(app, runner);
  ls::app::register_serve_command(app, runner);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // One clear line on stderr for bad usage.
    std::fprintf(stderr, "loraserve: %s\n", e.what());
    return 2;
  }
  return runner ? runner() : 2;
}
