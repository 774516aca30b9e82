// cpu_decode_bench.cpp: CPU decode throughput of the float32 engine on a ~0.5B-parameter Llama-shaped model with
// random weights (tests/data/configs/llama-0.5b), at batch 1 and 8, next to the bytes-per-token floor: every
// decode step reads all weights once (float32) plus each sequence's KV cache, so the fastest possible step is
// (weight bytes + KV bytes) / memory bandwidth, with the bandwidth measured in the same run.
//
// Usage: cpu_decode_bench [--config DIR] [--context N] [--steps N] [--threads N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/single_sequence.h"
#include "model/transformer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Read bandwidth: a parallel integer sum over a buffer much larger than the caches (a decode step is reads).
// Integer adds are associative, so the compiler vectorizes the loop and the sum is limited by memory, not by
// an add-latency chain.
double measure_read_bandwidth(size_t bytes) {
  std::vector<uint64_t> buffer(bytes / sizeof(uint64_t));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = i * 0x9E3779B97F4A7C15ull;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t = Clock::now();
    uint64_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (size_t i = 0; i < buffer.size(); ++i) total += buffer[i];
    const double s = seconds_since(t);
    if (total == 42) std::printf("(unlikely checksum)\n");
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  return best;
}

struct Args {
  std::string config = std::string(LS_SOURCE_DIR) + "/tests/data/configs/llama-0.5b";
  int context = 128;
  int steps = 8;
  int threads = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--config") a.config = argv[i + 1];
    if (k == "--context") a.context = std::stoi(argv[i + 1]);
    if (k == "--steps") a.steps = std::stoi(argv[i + 1]);
    if (k == "--threads") a.threads = std::stoi(argv[i + 1]);
  }
  return a;
}

// Decode `steps` tokens for `batch` sequences that already hold `context` cached tokens; returns seconds/step.
double time_decode(ls::Transformer& model, ls::KvCache& kv, int batch, int context, int steps, int block_size) {
  const int blocks_per_seq = (context + steps + block_size - 1) / block_size;
  ls::ForwardBatch fb;
  for (int s = 0; s < batch; ++s) {
    ls::SequenceStep step;
    step.num_cached = context;
    for (int b = 0; b < blocks_per_seq; ++b) step.block_table.push_back(s * blocks_per_seq + b);
    step.tokens = {static_cast<int32_t>(100 + s)};
    fb.seqs.push_back(step);
  }
  std::vector<double> times;
  for (int i = 0; i < steps + 1; ++i) {
    const auto t = Clock::now();
    auto logits = model.forward(fb, kv, nullptr);
    if (!logits.is_ok()) {
      std::fprintf(stderr, "%s\n", logits.status().to_string().c_str());
      std::exit(1);
    }
    if (i > 0) times.push_back(seconds_since(t));  // the first step warms caches and allocates the workspace
    for (auto& s : fb.seqs) {
      s.num_cached += 1;
      const float* row = logits.value().data();
      s.tokens = {static_cast<int32_t>(std::max_element(row, row + model.config().vocab_size) - row)};
    }
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  auto backend = ls::make_cpu_backend(args.threads);
  ls::LoadOptions options;
  options.dummy_weights = true;
  auto model = ls::Transformer::load(args.config, *backend, options);
  if (!model.is_ok()) {
    std::fprintf(stderr, "%s\n", model.status().to_string().c_str());
    return 1;
  }
  const ls::ModelConfig& c = (*model)->config();
  const int block_size = 16, max_batch = 8;
  const int blocks = max_batch * ((args.context + args.steps + block_size) / block_size + 1);
  auto kv = ls::KvCache::create(*backend, c, blocks, block_size).value();

  // Bytes a decode step must read: every weight but the embedding table (only `batch` rows of it), plus KV.
  const double embed_bytes = static_cast<double>(c.vocab_size * c.hidden_size) * 4;
  const double weight_bytes = static_cast<double>((*model)->weights().num_bytes) - embed_bytes;
  const double kv_bytes_per_seq = static_cast<double>(2 * c.num_layers * args.context * c.kv_size()) * 4;
  const double bandwidth = measure_read_bandwidth(size_t{1} << 30);
  std::printf("model: %s, %.0fM parameters (float32), context %d, %d threads\n", args.config.c_str(),
              ((*model)->weights().num_bytes / 4.0) / 1e6, args.context, omp_get_max_threads());
  std::printf("measured read bandwidth: %.1f GB/s\n", bandwidth / 1e9);
  std::printf("%-6s %12s %12s %12s %12s %10s\n", "batch", "step ms", "floor ms", "tokens/s", "floor tok/s", "of floor");
  for (int batch : {1, max_batch}) {
    const double step = time_decode(**model, kv, batch, args.context, args.steps, block_size);
    const double floor = (weight_bytes + batch * kv_bytes_per_seq) / bandwidth;
    std::printf("%-6d %12.1f %12.1f %12.2f %12.2f %9.0f%%\n", batch, step * 1e3, floor * 1e3, batch / step,
                batch / floor, 100 * floor / step);
  }
  return 0;
}
