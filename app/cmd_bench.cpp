// cmd_bench.cpp: `loraserve bench-engine`: the forward pass on one GPU next to its hardware floors, all in one
// run: the device's measured copy bandwidth and bf16 GEMM rate; decode steps (graph replays, median) at the
// given batch sizes and context against (weight bytes + KV bytes) / bandwidth, as reference/performance.md §3
// counts them (embedding rows not counted, lm_head counted); a prefill against FLOPs / GEMM rate; and a
// per-op breakdown of one layer's ops at each batch size.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "io/hub_cache.h"
#include "model/decode_graphs.h"
#include "model/transformer.h"

#ifdef LORASERVE_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_bench.h"
#endif

namespace ls::app {
namespace {

struct BenchArgs {
  std::string model;
  std::string load_format = "dummy";
  std::string device = "cuda";
  std::string batches = "1,32,128";
  int32_t context = 1024;
  int32_t replays = 100;
  int32_t prefill = 1024;
  int32_t block_size = 16;
  bool breakdown = true;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "loraserve: %s\n", message.c_str());
  return 1;
}

#ifdef LORASERVE_WITH_CUDA

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Bytes one decode step reads from weights: every layer, the final norm and the lm_head; not the embedding
// table (a step reads only its tokens' rows).
double step_weight_bytes(const ModelWeights& w) {
  double bytes = 0;
  auto add = [&](const Tensor& t) { bytes += t.data ? static_cast<double>(t.num_bytes()) : 0.0; };
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.input_norm, &l.post_attention_norm, &l.qkv, &l.qkv_bias, &l.o, &l.o_bias, &l.gate_up,
                            &l.gate_up_bias, &l.down, &l.down_bias})
      add(*t);
  }
  add(w.final_norm);
  add(w.lm_head);
  return bytes;
}

double kv_bytes(const ModelConfig& c, int64_t batch, int64_t context) {
  return static_cast<double>(batch) * context * 2.0 * c.num_layers * c.kv_size() * 2.0;
}

double layer_params(const ModelConfig& c) {
  const double h = c.hidden_size, q = c.q_size(), kv = c.kv_size(), i = c.intermediate_size;
  return h * (q + 2 * kv) + q * h + 3 * h * i;
}

ForwardBatch decode_batch(int32_t batch, int32_t context, int32_t blocks_per_seq, int64_t vocab) {
  ForwardBatch fb;
  for (int32_t s = 0; s < batch; ++s) {
    SequenceStep step;
    step.tokens = {static_cast<int32_t>((100 + 37 * s) % vocab)};
    step.num_cached = context - 1;  // this token is the context's last
    for (int32_t b = 0; b < blocks_per_seq; ++b) step.block_table.push_back(s * blocks_per_seq + b);
    fb.seqs.push_back(std::move(step));
  }
  return fb;
}

struct Bench {
  const BenchArgs& args;
  Backend& backend;
  Transformer& model;
  KvCache& kv;
  int32_t blocks_per_seq;
  double bandwidth = 0, gemm_flops = 0;

  // Median of `reps` timings of one eager op.
  double op_us(const std::function<void()>& op, int reps = 20) {
    op();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) t.push_back(cuda_time_ms(backend, op) * 1e3);
    return median(t);
  }

  void decode(const std::vector<int32_t>& batches);
  void breakdown(const ForwardBatch& fb, const std::string& label);
  void prefill();
};

void Bench::decode(const std::vector<int32_t>& batches) {
  const ModelConfig& c = model.config();
  DecodeGraphOptions o;
  o.buckets = batches;
  o.max_context = blocks_per_seq * args.block_size;
  auto graphs = DecodeGraphs::create(model, kv, o);
  LS_CHECK(graphs.is_ok()) << graphs.status().to_string();
  LS_CHECK((*graphs)->capture().is_ok());
  const double wbytes = step_weight_bytes(model.weights());
  std::printf("\ndecode steps at context %d (CUDA graphs; step = median of %d replays, pipelined = %d back-to-back "
              "steps with host staging overlapped):\n", args.context, args.replays, args.replays);
  std::printf("  %6s %10s %10s %9s %10s %10s %14s\n", "batch", "step ms", "floor ms", "floor %", "tok/s",
              "pipelined", "bytes/step GB");
  for (int32_t b : batches) {
    const ForwardBatch fb = decode_batch(b, args.context, blocks_per_seq, c.vocab_size);
    auto packed = pack_batch(fb, kv.block_size(), kv.num_blocks(), c.vocab_size, 0, (*graphs)->layout_for(b));
    LS_CHECK(packed.is_ok()) << packed.status().to_string();
    const PackedBatch& pb = packed.value();
    for (int i = 0; i < 3; ++i) LS_CHECK((*graphs)->run(pb).is_ok());
    backend.synchronize();
    std::vector<double> ms;
    for (int i = 0; i < args.replays; ++i) {
      const int32_t bucket = (*graphs)->prepare(pb).value();
      ms.push_back(cuda_time_ms(backend, [&] { (*graphs)->replay(bucket); }));
    }
    const double pipelined = cuda_time_ms(backend, [&] {
      for (int i = 0; i < args.replays; ++i) LS_CHECK((*graphs)->run(pb).is_ok());
    }) / args.replays;
    const double step = median(ms), bytes = wbytes + kv_bytes(c, b, args.context);
    const double floor_ms = bytes / bandwidth * 1e3;
    std::printf("  %6d %10.3f %10.3f %8.1f%% %10.0f %10.3f %14.2f\n", b, step, floor_ms, 100.0 * floor_ms / step,
                b / step * 1e3, pipelined, bytes / 1e9);
  }
}

// One layer's ops on a batch (decode steps or a prefill), timed one by one (each includes its launch).
void Bench::breakdown(const ForwardBatch& fb, const std::string& label) {
  const ModelConfig& c = model.config();
  const LayerWeights& w = model.weights().layers[0];
  auto packed = pack_batch(fb, kv.block_size(), kv.num_blocks(), c.vocab_size, 0);
  LS_CHECK(packed.is_ok()) << packed.status().to_string();
  const BatchMeta meta = backend.upload_batch(packed->meta);
  const int64_t T = packed->meta.num_tokens, R = packed->meta.num_logit_rows;
  ForwardWorkspace ws;
  LS_CHECK(model.reserve_workspace(ws, T, std::max<int64_t>(R, 1)).is_ok());
  const int64_t q = c.q_size(), kvs = c.kv_size(), inter = c.intermediate_size, hd = c.hidden_size;
  Tensor x = ws.t_normed.row_slice(0, T), res = ws.t_residual.row_slice(0, T), qkv = ws.t_qkv.row_slice(0, T);
  Tensor attn = ws.t_attn.row_slice(0, T), proj = ws.t_proj.row_slice(0, T), gu = ws.t_gate_up.row_slice(0, T);
  Tensor act = ws.t_act.row_slice(0, T), rows = ws.t_final_rows.row_slice(0, R), logits = ws.t_logits.row_slice(0, R);
  uint64_t seed = 77;
  for (Tensor* t : {&x, &res, &qkv, &attn, &proj, &gu, &act, &rows}) backend.fill_uniform(*t, seed++, -1.0f, 1.0f);
  Buffer zeros = backend.allocate(static_cast<size_t>(c.head_dim) * sizeof(float)).value();
  backend.fill_uniform(Tensor::make(zeros.data(), DType::kF32, 1, c.head_dim / 2), 5, 0.0f, 0.0f);
  const auto* inv_freq = static_cast<const float*>(zeros.data());  // rope's cost does not depend on the angles
  AttentionParams params;
  params.scale = 0.088f;
  params.num_heads = c.num_heads;
  const float eps = 1e-5f;
  double keys = 0;  // query-key pairs the attention visits
  for (int32_t s = 0; s < packed->meta.num_seqs; ++s)
    for (int32_t t = packed->meta.query_start[s]; t < packed->meta.query_start[s + 1]; ++t)
      keys += packed->meta.positions[t] + 1;
  struct Row {
    const char* name;
    double us, bytes, flops;
  };
  auto lin = [&](const Tensor& wt) { return std::pair{static_cast<double>(wt.num_bytes()), 2.0 * T * wt.rows * wt.cols}; };
  const double e = 2.0;
  std::vector<Row> r;
  r.push_back({"add_rms_norm x2", 2 * op_us([&] { backend.add_rms_norm(res, proj, w.input_norm, eps, x); }),
               2 * 3.0 * T * hd * e, 0});
  r.push_back({"qkv linear", op_us([&] { backend.linear(x, w.qkv, w.qkv_bias, qkv); }), lin(w.qkv).first,
               lin(w.qkv).second});
  r.push_back({"rope+kv_write", op_us([&] {
                  backend.rope_kv_write(meta, qkv.col_slice(0, q), qkv.col_slice(q, kvs), qkv.col_slice(q + kvs, kvs),
                                        inv_freq, c.head_dim, kv.layer(0));
                }), 3.0 * T * (q + 2 * kvs) * e, 0});
  r.push_back({"attention", op_us([&] { backend.attention(meta, qkv.col_slice(0, q), kv.layer(0), params, attn); }),
               keys * 2.0 * kvs * e, 4.0 * keys * c.num_heads * c.head_dim});
  r.push_back({"o linear", op_us([&] { backend.linear(attn, w.o, w.o_bias, proj); }), lin(w.o).first, lin(w.o).second});
  // The MLP's first half as the model runs it when no adapter touches gate/up (fused in the CUDA backend for
  // decode batches of 5-64 rows; linear then silu_mul otherwise).
  r.push_back({"gate_up+silu", op_us([&] { backend.linear_silu_mul(x, w.gate_up, w.gate_up_bias, gu, act); }),
               lin(w.gate_up).first + T * inter * e, lin(w.gate_up).second});
  r.push_back({"down linear", op_us([&] { backend.linear(act, w.down, w.down_bias, proj); }), lin(w.down).first,
               lin(w.down).second});
  double layer_us = 0;
  std::printf("\nper-op breakdown, %s (one layer's ops timed alone, median of 20, launch included):\n", label.c_str());
  std::printf("  %-16s %9s %9s %9s %9s\n", "op", "us", "GB/s", "TFLOP/s", "x layers");
  for (const Row& row : r) {
    layer_us += row.us;
    std::printf("  %-16s %9.1f %9.0f %9.1f %9.0f\n", row.name, row.us, row.bytes / (row.us * 1e-6) / 1e9,
                row.flops / (row.us * 1e-6) / 1e12, row.us * c.num_layers);
  }
  const Tensor& head = model.weights().lm_head;
  const double head_us = op_us([&] { backend.linear(rows, head, Tensor{}, logits); });
  std::printf("  %-16s %9.1f %9.0f %9.1f\n", "lm_head", head_us, static_cast<double>(head.num_bytes()) / (head_us * 1e-6) / 1e9,
              2.0 * R * head.rows * head.cols / (head_us * 1e-6) / 1e12);
  std::printf("  sum: %.3f ms (layers %.3f + lm_head %.3f)\n", (layer_us * c.num_layers + head_us) * 1e-3,
              layer_us * c.num_layers * 1e-3, head_us * 1e-3);
}

ForwardBatch prefill_batch(int32_t tokens, int32_t block_size, int64_t vocab) {
  ForwardBatch fb;
  SequenceStep s;
  for (int32_t i = 0; i < tokens; ++i) s.tokens.push_back(static_cast<int32_t>((7 * i + 11) % vocab));
  for (int32_t b = 0; b < (tokens + block_size - 1) / block_size; ++b) s.block_table.push_back(b);
  fb.seqs.push_back(std::move(s));
  return fb;
}

void Bench::prefill() {
  const ModelConfig& c = model.config();
  const int32_t T = args.prefill;
  const ForwardBatch fb = prefill_batch(T, args.block_size, c.vocab_size);
  auto once = [&] {
    PackedBatch packed;
    auto logits = model.forward_device(fb, kv, nullptr, &packed);
    LS_CHECK(logits.is_ok()) << logits.status().to_string();
  };
  for (int i = 0; i < 2; ++i) {
    once();
    backend.synchronize();
  }
  std::vector<double> ms;
  for (int i = 0; i < 7; ++i) ms.push_back(cuda_time_ms(backend, once));
  const double t = median(ms);
  const double attention = 2.0 * 2.0 * c.num_heads * c.head_dim * (static_cast<double>(T) * (T + 1) / 2) * c.num_layers;
  const double flops = 2.0 * T * layer_params(c) * c.num_layers + attention +
                       2.0 * static_cast<double>(c.vocab_size) * c.hidden_size;
  const double floor_ms = flops / gemm_flops * 1e3;
  std::printf("\nprefill of %d tokens (one sequence, logits of the last; median of 7): %.2f ms, %.0f tok/s\n", T, t,
              T / t * 1e3);
  std::printf("  GEMM floor %.2f ms (%.2f TFLOP / %.0f TFLOP/s measured): %.1f%% of the floor rate, %.0f TFLOP/s\n",
              floor_ms, flops / 1e12, gemm_flops / 1e12, 100.0 * floor_ms / t, flops / (t * 1e-3) / 1e12);
}

Result<std::vector<int32_t>> parse_batches(const std::string& text) {
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const int v = std::atoi(text.substr(pos, comma - pos).c_str());
    if (v <= 0) return invalid_argument("--batches: positive comma-separated integers");
    out.push_back(v);
    pos = comma + 1;
  }
  if (out.empty()) return invalid_argument("--batches is empty");
  std::sort(out.begin(), out.end());
  return out;
}

int run_bench(const BenchArgs& a) {
  if (a.device != "cuda") return fail("bench-engine measures the cuda device (bench/cpu_decode_bench covers the CPU)");
  auto batches = parse_batches(a.batches);
  if (!batches.is_ok()) return fail(batches.status().to_string());
  auto backend = make_backend(a.device);
  if (!backend.is_ok()) return fail(backend.status().to_string());
  Backend& b = **backend;
  auto dir = resolve_model_dir(a.model);
  if (!dir.is_ok()) return fail(dir.status().to_string());
  LoadOptions options;
  options.dummy_weights = a.load_format == "dummy";
  auto model = Transformer::load(*dir, b, options);
  if (!model.is_ok()) return fail(model.status().to_string());
  const ModelConfig& c = (*model)->config();
  std::printf("loraserve bench-engine: %s (%s weights, %.2f GB) on %s\n", dir->c_str(), a.load_format.c_str(),
              static_cast<double>((*model)->weights().num_bytes) / 1e9, cuda_device_description(b).c_str());
  const double bandwidth = cuda_copy_bandwidth(b, size_t{1} << 30, 20);
  const double gemm_flops = cuda_gemm_flops(b, 8192, 10);
  std::printf("device: copy bandwidth %.0f GB/s (device-to-device, read+write, median of 20 x 1 GiB); bf16 GEMM "
              "%.0f TFLOP/s (8192^3 cuBLASLt, median of 10)\n", bandwidth / 1e9, gemm_flops / 1e12);
  const int32_t blocks_per_seq = (a.context + a.block_size - 1) / a.block_size;
  const int32_t prefill_blocks = (a.prefill + a.block_size - 1) / a.block_size;
  const int32_t num_blocks = std::max(batches->back() * blocks_per_seq, prefill_blocks);
  auto kv = KvCache::create(b, c, num_blocks, a.block_size);
  if (!kv.is_ok()) return fail(kv.status().to_string());
  for (int64_t l = 0; l < c.num_layers; ++l) {  // random cache contents: zeros would flatter the kernels
    const KvLayer& layer = kv->layer(l);
    for (void* p : {layer.k, layer.v})
      b.fill_uniform(Tensor::make(p, DType::kBF16, static_cast<int64_t>(num_blocks) * a.block_size, c.kv_size()),
                     1000 + l, -1.0f, 1.0f);
  }
  Bench run{a, b, **model, *kv, blocks_per_seq, bandwidth, gemm_flops};
  run.decode(*batches);
  if (CudaBackend* cb = as_cuda_backend(b)) {  // the projection paths not taken, for comparison
    const bool gemv = cb->gemv_enabled();
    const CudaBackend::SkinnyMode skinny = cb->skinny_mode();
    std::vector<int32_t> small, large;
    for (int32_t batch : *batches) (batch <= 4 ? small : large).push_back(batch);
    if (!small.empty()) {
      cb->set_gemv_enabled(!gemv);
      std::printf("\nthe same with the GEMV kernel %s (cuBLASLt %s) for 1-4 rows:", gemv ? "off" : "on",
                  gemv ? "instead" : "replaced");
      run.decode(small);
      cb->set_gemv_enabled(gemv);
    }
    if (!large.empty()) {
      const bool off = skinny == CudaBackend::SkinnyMode::kOff;
      cb->set_skinny_mode(off ? CudaBackend::SkinnyMode::kAuto : CudaBackend::SkinnyMode::kOff);
      std::printf("\nthe same with the skinny weight-streaming GEMM %s for 5-64 rows:",
                  off ? "where it measured faster (instead of cuBLASLt and a separate SiLU-mul)"
                      : "off (cuBLASLt for every projection, SiLU-mul separate)");
      run.decode(large);
      cb->set_skinny_mode(skinny);
    }
  }
  run.prefill();
  if (a.breakdown) {
    for (int32_t batch : *batches)
      run.breakdown(decode_batch(batch, a.context, blocks_per_seq, c.vocab_size),
                    "decode batch " + std::to_string(batch) + " at context " + std::to_string(a.context));
    run.breakdown(prefill_batch(a.prefill, a.block_size, c.vocab_size), "prefill of " + std::to_string(a.prefill) + " tokens");
  }
  return 0;
}

#else

int run_bench(const BenchArgs&) { return fail("bench-engine needs a build with the CUDA backend (LORASERVE_CUDA=ON)"); }

#endif

}  // namespace

void register_bench_commands(CLI::App& app, CommandRunner& runner) {
  static BenchArgs args;
  CLI::App* cmd = app.add_subcommand("bench-engine", "time decode steps and a prefill on the GPU against their floors");
  cmd->add_option("--model", args.model, "model directory (config.json is enough with --load-format dummy)")->required();
  cmd->add_option("--load-format", args.load_format, "dummy (default: random weights) or safetensors")
      ->check(CLI::IsMember({"dummy", "safetensors", "auto"}));
  cmd->add_option("--device", args.device, "cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--batches", args.batches, "decode batch sizes, comma-separated (default 1,32,128)");
  cmd->add_option("--context", args.context, "tokens of context per decode sequence (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--replays", args.replays, "graph replays per batch size (default 100)")->check(CLI::Range(1, 100000));
  cmd->add_option("--prefill", args.prefill, "prompt tokens of the prefill measurement (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--block-size", args.block_size, "KV block size (default 16)")->check(CLI::Range(1, 1024));
  cmd->add_flag("!--no-breakdown", args.breakdown, "skip the per-op breakdown");
  cmd->callback([&runner] { runner = [] { return run_bench(args); }; });
}

}  // namespace ls::app
