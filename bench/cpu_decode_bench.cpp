// cpu_decode_bench.cpp: CPU decode throughput on a ~0.5B-parameter Llama-shaped model with random weights
// (tests/data/configs/llama-0.5b), per weight format (f32, bf16, int8) and batch size, next to two floors
// measured in the same run:
//  - memory: a decode step reads every weight matrix once (the embedding only for its tokens' rows, so it is
//    not counted unless tied to lm_head) plus each sequence's KV cache; floor = bytes / read bandwidth, the
//    bandwidth from a probe that streams like the GEMM does (one sequential stream per thread): the median of 7
//    repetitions before the decode runs (min and max printed, and the probe repeated after them);
//  - compute: batch x parameters multiply-adds at the measured float32 FMA rate of all threads.
// A step cannot be faster than the larger of the two. With --lora-rank R (default 16; 0 skips it) the batch-8
// decode also runs with four synthetic rank-R adapters on all seven projections, the sequences rotating over
// them (two per adapter: four segments in every step), next to the base-only step; the floor of the difference
// is the adapters' bytes (read once per step) or their multiply-adds, whichever takes longer.
//
// Usage: cpu_decode_bench [--config DIR] [--weights f32,bf16,int8] [--batches 1,8,32] [--context N] [--steps N]
//                         [--threads N] [--probe-mib N] [--lora-rank R]
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/random_fill.h"
#include "core/timing.h"
#include "lora/lora_slots.h"
#include "model/transformer.h"

namespace {

using ls::median;
using ls::seconds_since;

using Clock = std::chrono::steady_clock;


// Runs fn(t) on `threads` threads (t = 0 on the caller) and returns the wall time.
template <class F>
double timed_on_threads(int threads, F&& fn) {
  std::vector<std::thread> workers;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int t = 1; t < threads; ++t)
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      fn(t);
    });
  while (ready.load() != threads - 1) {
  }
  const auto start = Clock::now();
  go.store(true);
  fn(0);
  for (std::thread& w : workers) w.join();
  return seconds_since(start);
}

// Read bandwidth: each thread sums its contiguous share of a buffer far larger than the caches, one sequential
// stream per thread (as a GEMM thread streams its panels), huge pages like the weights. Returns GB/s per rep.
std::vector<double> probe_bandwidth(int threads, size_t bytes, int reps) {
  constexpr size_t kHuge = size_t{2} << 20;
  bytes = (bytes + kHuge - 1) / kHuge * kHuge;
  auto* buffer = static_cast<uint64_t*>(std::aligned_alloc(kHuge, bytes));
  madvise(buffer, bytes, MADV_HUGEPAGE);
  const size_t n = bytes / sizeof(uint64_t);
  for (size_t i = 0; i < n; ++i) buffer[i] = i * 0x9E3779B97F4A7C15ull;
  std::vector<double> out;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  for (int rep = 0; rep < reps + 1; ++rep) {
    const double s = timed_on_threads(threads, [&](int t) {
      const uint64_t* p = buffer + n * t / threads;
      const size_t count = n * (t + 1) / threads - n * t / threads;
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // integer adds: no latency chain limits the stream
      for (size_t i = 0; i + 4 <= count; i += 4) {
        a0 += p[i];
        a1 += p[i + 1];
        a2 += p[i + 2];
        a3 += p[i + 3];
      }
      sums[t] = a0 + a1 + a2 + a3;
    });
    if (rep > 0) out.push_back(static_cast<double>(bytes) / s / 1e9);  // rep 0 warms the pages and threads
  }
  std::free(buffer);
  return out;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) double fma_rate_avx512(long iters) {
  __m512 a[12];
  for (int j = 0; j < 12; ++j) a[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  const auto start = Clock::now();
  for (long i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) a[j] = _mm512_fmadd_ps(a[j], x, y);
  const double s = seconds_since(start);
  float sink[16];
  __m512 sum = a[0];
  for (int j = 1; j < 12; ++j) sum = _mm512_add_ps(sum, a[j]);
  _mm512_storeu_ps(sink, sum);
  if (sink[0] == 42.0f) std::printf(" ");
  return static_cast<double>(iters) * 12 * 16 / s;
}
#endif

// Float32 multiply-adds per second of all threads (the AVX-512 FMA peak; 0 where unavailable).
double measure_fma_rate(int threads) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) return 0;
  std::vector<double> rates(static_cast<size_t>(threads));
  timed_on_threads(threads, [&](int t) { rates[t] = fma_rate_avx512(20'000'000); });
  double total = 0;
  for (double r : rates) total += r;
  return total;
#else
  (void)threads;
  return 0;
#endif
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Args {
  std::string config = std::string(LS_SOURCE_DIR) + "/tests/data/configs/llama-0.5b";
  std::vector<std::string> weights = {"f32", "bf16", "int8"};
  std::vector<int> batches = {1, 8, 32};
  int context = 128;
  int steps = 16;
  int threads = 0;
  int probe_mib = 512;
  int lora_rank = 16;
};

const char* const kUsage =
    "usage: cpu_decode_bench [--config DIR] [--weights f32,bf16,int8] [--batches 1,8,32] [--context N]\n"
    "                        [--steps N] [--threads N] [--probe-mib N] [--lora-rank R]\n"
    "  --config DIR     model directory with config.json (random weights; default tests/data/configs/llama-0.5b)\n"
    "  --weights LIST   CPU weight formats to measure (default f32,bf16,int8)\n"
    "  --batches LIST   decode batch sizes (default 1,8,32)\n"
    "  --context N      cached tokens per sequence before the timed steps (default 128)\n"
    "  --steps N        timed decode steps per batch size, after one warm-up step (default 16)\n"
    "  --threads N      CPU threads (default: one per core)\n"
    "  --probe-mib N    bandwidth probe buffer in MiB (default 512)\n"
    "  --lora-rank R    rank of the four synthetic adapters of the mixed batch-8 run (default 16; 0: skip)\n";

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::printf("%s", kUsage);
      std::exit(0);
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    try {
      if (k == "--config") a.config = v;
      else if (k == "--weights") a.weights = split(v);
      else if (k == "--batches") {
        a.batches.clear();
        for (const std::string& b : split(v)) a.batches.push_back(std::stoi(b));
      } else if (k == "--context") a.context = std::stoi(v);
      else if (k == "--steps") a.steps = std::stoi(v);
      else if (k == "--threads") a.threads = std::stoi(v);
      else if (k == "--probe-mib") a.probe_mib = std::stoi(v);
      else if (k == "--lora-rank") a.lora_rank = std::stoi(v);
      else return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return a.context >= 0 && a.steps >= 1 && a.threads >= 0 && a.probe_mib >= 16 && a.lora_rank >= 0 && !a.batches.empty() &&
         *std::min_element(a.batches.begin(), a.batches.end()) >= 1;
}

// Decodes `steps` timed tokens (after one warm-up) for `batch` sequences that already hold `context` cached
// tokens (sequence s on adapter slot slots[s] when given); returns the seconds of each timed step.
std::vector<double> time_decode(ls::Transformer& model, ls::KvCache& kv, int batch, int context, int steps,
                                const ls::LoraTable* lora = nullptr, const std::vector<int32_t>& slots = {}) {
  const int bs = kv.block_size();
  const int blocks_per_seq = (context + steps + 1 + bs - 1) / bs;  // the warm-up step writes a position too
  ls::ForwardBatch fb;
  for (int s = 0; s < batch; ++s) {
    ls::SequenceStep step;
    step.num_cached = context;
    for (int b = 0; b < blocks_per_seq; ++b) step.block_table.push_back(s * blocks_per_seq + b);
    step.tokens = {static_cast<int32_t>(100 + s)};
    step.lora_slot = slots.empty() ? -1 : slots[s];
    fb.seqs.push_back(step);
  }
  std::vector<double> times;
  for (int i = 0; i < steps + 1; ++i) {
    const auto t = Clock::now();
    auto logits = model.forward(fb, kv, lora);
    if (!logits.is_ok()) {
      std::fprintf(stderr, "%s\n", logits.status().to_string().c_str());
      std::exit(1);
    }
    if (i > 0) times.push_back(seconds_since(t));  // the first step warms caches and allocates the workspace
    for (int s = 0; s < batch; ++s) {
      const float* row = logits.value().data() + s * model.config().vocab_size;
      fb.seqs[s].num_cached += 1;
      fb.seqs[s].tokens = {static_cast<int32_t>(std::max_element(row, row + model.config().vocab_size) - row)};
    }
  }
  return times;
}

// Bytes of the weights one decode step reads: every matrix and norm but the embedding table (unless tied).
double step_weight_bytes(const ls::ModelWeights& w) {
  double bytes = 0;
  auto add = [&](const ls::Tensor& t) { bytes += t.data ? static_cast<double>(t.num_bytes()) : 0.0; };
  for (const ls::LayerWeights& l : w.layers)
    for (const ls::Tensor* t : {&l.input_norm, &l.post_attention_norm, &l.qkv, &l.qkv_bias, &l.o, &l.o_bias, &l.gate_up,
                                &l.gate_up_bias, &l.down, &l.down_bias})
      add(*t);
  add(w.final_norm);
  add(w.lm_head);
  return bytes;
}

// Random adapters of `rank` on all seven projections of every layer (A and B uniform in +-1/sqrt(in)).
ls::LoraAdapter synthetic_adapter(const ls::ModelConfig& c, int rank, uint64_t seed) {
  ls::LoraAdapter a;
  a.max_rank = rank;
  const int64_t h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), i = c.intermediate_size;
  const int64_t dims[ls::kNumLoraModules][2] = {{h, q}, {h, kv}, {h, kv}, {q, h}, {h, i}, {h, i}, {i, h}};
  a.layers.resize(static_cast<size_t>(c.num_layers));
  for (auto& layer : a.layers)
    for (int m = 0; m < ls::kNumLoraModules; ++m) {
      ls::LoraModuleTensors& t = layer[m];
      t.rank = rank;
      t.a.resize(static_cast<size_t>(rank * dims[m][0]));
      t.b.resize(static_cast<size_t>(dims[m][1] * rank));
      for (size_t j = 0; j < t.a.size(); ++j) t.a[j] = ls::uniform_at(seed++, j, -0.03f, 0.03f);
      for (size_t j = 0; j < t.b.size(); ++j) t.b[j] = ls::uniform_at(seed++, j, -0.03f, 0.03f);
      a.num_parameters += t.a.size() + t.b.size();
    }
  return a;
}

// Batch 8, base only and rotating over four rank-R adapters, on the same model and cache.
void lora_rows(const std::string& format, ls::Backend& backend, ls::Transformer& model, ls::KvCache& kv,
               const Args& args, double bandwidth, double fma_rate) {
  const ls::ModelConfig& c = model.config();
  auto slots = ls::LoraSlots::create(backend, c, 4, 4 * args.lora_rank);
  if (!slots.is_ok()) return;
  double adapter_params = 0;
  for (int32_t s = 0; s < 4; ++s) {
    const ls::LoraAdapter a = synthetic_adapter(c, args.lora_rank, 7000 + 1000000ull * s);
    adapter_params += static_cast<double>(a.num_parameters);
    if (!slots->load(s, a).is_ok()) return;
  }
  const int batch = 8;
  const std::vector<int32_t> rotating = {0, 0, 1, 1, 2, 2, 3, 3};
  const double base = median(time_decode(model, kv, batch, args.context, args.steps));
  const double mixed = median(time_decode(model, kv, batch, args.context, args.steps, &*slots, rotating));
  // Each adapter's A and B are read once per step (float32, or bf16 with bf16 / int8 weights); each token does
  // rank x (in + out) multiply-adds per module.
  const double bytes = adapter_params * (format == "f32" ? 4 : 2), macs = batch * adapter_params / 4;
  const double floor = std::max(bytes / bandwidth, fma_rate > 0 ? macs / fma_rate : 0.0);
  std::printf("%-7s %6s %9.2f ms base, %9.2f ms rotating over 4 rank-%d adapters (%.1f%% of base throughput); "
              "adapters add %.2f ms, floor %.2f ms (%.0f MB, %.0fM multiply-adds)\n",
              format.c_str(), "8 lora", base * 1e3, mixed * 1e3, args.lora_rank, 100 * base / mixed, (mixed - base) * 1e3,
              floor * 1e3, bytes / 1e6, macs / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parse(argc, argv, args)) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  auto config = ls::load_model_config(args.config);
  if (!config.is_ok()) {
    std::fprintf(stderr, "%s\n", config.status().to_string().c_str());
    return 1;
  }
  const ls::ModelConfig& c = config.value();
  const int threads = args.threads > 0 ? args.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const double params = static_cast<double>(c.num_layers) *
                            (c.hidden_size * (c.q_size() + 2 * c.kv_size()) + c.q_size() * c.hidden_size +
                             3.0 * c.hidden_size * c.intermediate_size) +
                        static_cast<double>(c.vocab_size) * c.hidden_size;  // multiply-adds per token (lm_head)
  const std::vector<double> probes = probe_bandwidth(threads, size_t(args.probe_mib) << 20, 7);
  const double fma_rate = measure_fma_rate(threads);
  std::printf("model: %s (%.0fM multiply-adds per token), context %d, %d timed steps, %d threads\n",
              args.config.c_str(), params / 1e6, args.context, args.steps, threads);
  std::printf("read bandwidth (probe, %d threads, %d MiB, 7 reps): median %.1f GB/s, min %.1f, max %.1f\n", threads,
              args.probe_mib, median(probes), *std::min_element(probes.begin(), probes.end()),
              *std::max_element(probes.begin(), probes.end()));
  std::printf("float32 FMA rate, all threads: %.1f G multiply-adds/s\n", fma_rate / 1e9);
  std::printf("%-6s %6s %9s %9s %9s %9s %9s %9s %9s %7s\n", "weights", "batch", "step ms", "min", "max", "tok/s",
              "mem flr", "fma flr", "flr tok/s", "of flr");
  const double kv_bytes_per_token = 2.0 * c.num_layers * c.kv_size() * 4;
  for (const std::string& format : args.weights) {
    ls::BackendOptions options;
    options.cpu_threads = threads;
    options.cpu_weights = format;
    auto backend = ls::make_backend(options);
    if (!backend.is_ok()) {
      std::fprintf(stderr, "%s\n", backend.status().to_string().c_str());
      return 1;
    }
    ls::LoadOptions load;
    load.dummy_weights = true;
    auto model = ls::Transformer::load(args.config, **backend, load);
    if (!model.is_ok()) {
      std::fprintf(stderr, "%s\n", model.status().to_string().c_str());
      return 1;
    }
    const int max_batch = std::max(8, *std::max_element(args.batches.begin(), args.batches.end()));
    const int block_size = 16, blocks_per_seq = (args.context + args.steps + 1 + block_size - 1) / block_size;
    auto kv = ls::KvCache::create(**backend, c, max_batch * blocks_per_seq, block_size).value();
    for (int64_t l = 0; l < c.num_layers; ++l) {  // a realistic context, not uninitialized memory
      const ls::KvLayer& layer = kv.layer(l);
      const int64_t rows = layer.num_blocks * layer.block_size, width = layer.num_kv_heads * layer.head_dim;
      (*backend)->fill_uniform(ls::Tensor::make(layer.k, ls::DType::kF32, rows, width), 1000 + l, -1.0f, 1.0f);
      (*backend)->fill_uniform(ls::Tensor::make(layer.v, ls::DType::kF32, rows, width), 2000 + l, -1.0f, 1.0f);
    }
    const double weight_bytes = step_weight_bytes((*model)->weights());
    for (int batch : args.batches) {
      const std::vector<double> times = time_decode(**model, kv, batch, args.context, args.steps);
      const double step = median(times);
      const double mean_context = args.context + (args.steps + 1) / 2.0;
      const double mem_floor = (weight_bytes + batch * mean_context * kv_bytes_per_token) / (median(probes) * 1e9);
      const double fma_floor = fma_rate > 0 ? batch * params / fma_rate : 0;
      const double floor = std::max(mem_floor, fma_floor);
      std::printf("%-7s %6d %9.2f %9.2f %9.2f %9.1f %9.2f %9.2f %9.1f %6.0f%%\n", format.c_str(), batch, step * 1e3,
                  *std::min_element(times.begin(), times.end()) * 1e3, *std::max_element(times.begin(), times.end()) * 1e3,
                  batch / step, mem_floor * 1e3, fma_floor * 1e3, batch / floor, 100 * floor / step);
    }
    if (args.lora_rank > 0) lora_rows(format, **backend, **model, kv, args, median(probes) * 1e9, fma_rate);
  }
  const std::vector<double> after = probe_bandwidth(threads, size_t(args.probe_mib) << 20, 7);
  std::printf("read bandwidth after the runs: median %.1f GB/s, min %.1f, max %.1f\n", median(after),
              *std::min_element(after.begin(), after.end()), *std::max_element(after.begin(), after.end()));
  return 0;
}
