// tokenizer_bench.cpp: encode throughput of ls::Tokenizer on one thread.
// Usage: tokenizer_bench --tokenizer FILE [--mode lines|file] [--seconds S] CORPUS_FILE...
// "lines" encodes each line (split on "\n") separately, "file" each file as one text; add_special_tokens is
// off. Prints one line: tokenizer, mode, bytes, tokens, seconds, MB/s (MB = 10^6 bytes).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/file.h"
#include "tokenizer/tokenizer.h"

namespace {

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path, mode = "lines";
  double min_seconds = 3.0;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--tokenizer" && i + 1 < argc) {
      tokenizer_path = argv[++i];
    } else if (arg == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (arg == "--seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else {
      files.push_back(arg);
    }
  }
  if (tokenizer_path.empty() || files.empty() || (mode != "lines" && mode != "file")) {
    std::fprintf(stderr, "usage: tokenizer_bench --tokenizer FILE [--mode lines|file] [--seconds S] CORPUS...\n");
    return 2;
  }
  auto tokenizer = ls::Tokenizer::load(tokenizer_path);
  if (!tokenizer.is_ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", tokenizer.status().to_string().c_str());
    return 1;
  }
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const std::string& f : files) {
    auto read = ls::read_file(f, size_t{1} << 30);
    if (!read.is_ok()) {
      std::fprintf(stderr, "tokenizer_bench: %s\n", read.status().to_string().c_str());
      return 1;
    }
    const std::string text = std::move(*read);
    if (mode == "file") {
      texts.push_back(text);
    } else {
      size_t pos = 0;
      while (true) {
        const size_t nl = text.find('\n', pos);
        texts.push_back(text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
    }
  }
  for (const std::string& t : texts) bytes += t.size();
  // One untimed pass warms the word cache the way a running server's is warm.
  size_t tokens = 0;
  for (const std::string& t : texts) tokens += tokenizer.value()->encode(t, false).value().size();
  int passes = 0;
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0;
  do {
    for (const std::string& t : texts) {
      auto ids = tokenizer.value()->encode(t, false);
      if (!ids.is_ok()) {
        std::fprintf(stderr, "tokenizer_bench: %s\n", ids.status().to_string().c_str());
        return 1;
      }
    }
    ++passes;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (seconds < min_seconds);
  const double mb_per_s = static_cast<double>(bytes) * passes / seconds / 1e6;
  std::printf("loraserve %s %s bytes=%zu tokens=%zu passes=%d seconds=%.3f MB/s=%.2f\n", tokenizer_path.c_str(),
              mode.c_str(), bytes, tokens, passes, seconds, mb_per_s);
  return 0;
}
