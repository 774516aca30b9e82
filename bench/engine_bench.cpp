// engine_bench.cpp: the forward pass on one GPU next to its hardware floors, all in one run (it was `loraserve
// bench-engine` until 2026-12-01; the flags are the same): the device's measured copy bandwidth and bf16 GEMM rate;
// decode steps (graph replays, median) at the given batch sizes and context against (weight bytes + KV bytes +
// adapter bytes) / bandwidth, as reference/performance.md §3 counts them (embedding rows not counted, lm_head
// counted), base-only, with one adapter for the whole batch and with a distinct adapter per sequence (dummy rank-16
// adapters on all seven projections); a prefill with and without an adapter against FLOPs / GEMM rate; and a
// per-op breakdown of one layer's ops (the LoRA ops included) at each batch size. Built with the CUDA backend only.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/timing.h"
#include "io/hub_cache.h"
#include "lora/lora_slots.h"
#include "model/decode_graphs.h"
#include "model/transformer.h"

#include "backend/cuda/cuda_backend.h"
#include "cuda_bench.h"

namespace ls {
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
  bool compare = true;  // the decode steps again on the paths the options did not choose
  int32_t lora_rank = 16;  // 0: no adapter measurements
  bool profile_steps = false;  // one more replay of each decode step inside a profiler range
  bool gemm_plans = false;     // print the cuBLASLt plans at the end

  BackendOptions backend;  // --gemv-rows, --skinny, --decode-attention, --pdl, --gemm-tune, --lora-* fill backend.cuda
};

int fail(const std::string& message) {
  std::fprintf(stderr, "engine_bench: %s\n", message.c_str());
  return 1;
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
  LoraSlots* lora = nullptr;  // dummy adapters, one per slot, at args.lora_rank

  // Median of `reps` timings of one eager op.
  double op_us(const std::function<void()>& op, int reps = 20) {
    op();
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) t.push_back(cuda_time_ms(backend, op) * 1e3);
    return median(t);
  }

  void decode(const std::vector<int32_t>& batches, bool with_adapters);
  void breakdown(const ForwardBatch& fb, const std::string& label);
  void lora_ops(const ForwardBatch& fb, const std::string& label);
  void prefill();
};

enum class Adapters { kNone, kOne, kDistinct };
const char* adapters_name(Adapters a) {
  return a == Adapters::kNone ? "base" : a == Adapters::kOne ? "one" : "distinct";
}

// Sequence s uses no adapter, slot 0, or slot s (modulo the slots).
void assign_adapters(ForwardBatch& fb, Adapters a, int32_t num_slots) {
  for (size_t s = 0; s < fb.seqs.size(); ++s)
    fb.seqs[s].lora_slot = a == Adapters::kNone ? -1 : a == Adapters::kOne ? 0 : static_cast<int32_t>(s) % num_slots;
}

// Adapter bytes a step reads: each distinct adapter's A and B once.
double adapter_bytes(const LoraSlots* lora, int32_t rank, Adapters a, int32_t batch) {
  if (a == Adapters::kNone || !lora) return 0;
  const int32_t n = a == Adapters::kOne ? 1 : std::min(batch, lora->num_slots());
  return static_cast<double>(n) * rank * static_cast<double>(lora->bytes_per_rank());
}

void Bench::decode(const std::vector<int32_t>& batches, bool with_adapters) {
  const ModelConfig& c = model.config();
  DecodeGraphOptions o;
  o.buckets = batches;
  o.max_context = blocks_per_seq * args.block_size;
  const LoraTable* table = with_adapters ? lora : nullptr;
  auto graphs = DecodeGraphs::create(model, kv, o);
  LS_CHECK(graphs.is_ok()) << graphs.status().to_string();
  LS_CHECK((*graphs)->capture().is_ok());
  const double wbytes = step_weight_bytes(model.weights());
  std::printf("\ndecode steps at context %d (CUDA graphs; step = median of %d replays, pipelined = %d back-to-back "
              "steps with host staging overlapped; adapters: none, one for the batch, one per sequence, rank %d on "
              "all 7 projections):\n", args.context, args.replays, args.replays, args.lora_rank);
  std::printf("  %6s %9s %10s %10s %9s %10s %10s %14s %11s\n", "batch", "adapters", "step ms", "floor ms", "floor %",
              "tok/s", "pipelined", "bytes/step GB", "adapter GB");
  for (int32_t b : batches) {
    std::vector<Adapters> modes = {Adapters::kNone};
    if (table) modes.push_back(Adapters::kOne);
    if (table && b > 1) modes.push_back(Adapters::kDistinct);
    for (Adapters mode : modes) {
      ForwardBatch fb = decode_batch(b, args.context, blocks_per_seq, c.vocab_size);
      if (table) assign_adapters(fb, mode, lora->num_slots());
      auto packed = pack_batch(fb, kv.block_size(), kv.num_blocks(), c.vocab_size, table ? lora->num_slots() : 0,
                               (*graphs)->layout_for(b));
      LS_CHECK(packed.is_ok()) << packed.status().to_string();
      const PackedBatch& pb = packed.value();
      for (int i = 0; i < 3; ++i) LS_CHECK((*graphs)->run(pb, table).is_ok());
      backend.synchronize();
      std::vector<double> ms;
      for (int i = 0; i < args.replays; ++i) {
        const DecodeGraphs::GraphKey key = (*graphs)->prepare(pb, table).value();
        ms.push_back(cuda_time_ms(backend, [&] { (*graphs)->replay(key); }));
      }
      const double pipelined = cuda_time_ms(backend, [&] {
        for (int i = 0; i < args.replays; ++i) LS_CHECK((*graphs)->run(pb, table).is_ok());
      }) / args.replays;
      if (args.profile_steps) {
        const DecodeGraphs::GraphKey key = (*graphs)->prepare(pb, table).value();
        cuda_profiled(backend, [&] { (*graphs)->replay(key); });
      }
      const double abytes = adapter_bytes(lora, args.lora_rank, mode, b);
      const double step = median(ms), bytes = wbytes + kv_bytes(c, b, args.context) + abytes;
      const double floor_ms = bytes / bandwidth * 1e3;
      std::printf("  %6d %9s %10.3f %10.3f %8.1f%% %10.0f %10.3f %14.2f %11.3f\n", b, adapters_name(mode), step,
                  floor_ms, 100.0 * floor_ms / step, b / step * 1e3, pipelined, bytes / 1e9, abytes / 1e9);
    }
  }
}

// The LoRA ops of one layer on a batch (decode steps or a prefill), timed alone (launch included): each module group
// with one adapter for the batch and, where it has several sequences, one adapter per sequence, against the adapter
// bytes it must read.
void Bench::lora_ops(const ForwardBatch& batch_fb, const std::string& label) {
  const ModelConfig& c = model.config();
  const auto seqs = static_cast<int32_t>(batch_fb.seqs.size());
  int64_t T = 0;
  for (const auto& s : batch_fb.seqs) T += static_cast<int64_t>(s.tokens.size());
  ForwardWorkspace ws;
  LS_CHECK(model.reserve_workspace(ws, T, 1).is_ok());
  const int64_t q = c.q_size(), kvs = c.kv_size(), inter = c.intermediate_size;
  Tensor x = ws.t_normed.row_slice(0, T), qkv = ws.t_qkv.row_slice(0, T), attn = ws.t_attn.row_slice(0, T);
  Tensor proj = ws.t_proj.row_slice(0, T), gu = ws.t_gate_up.row_slice(0, T), act = ws.t_act.row_slice(0, T);
  uint64_t seed = 91;
  for (Tensor* t : {&x, &qkv, &attn, &proj, &gu, &act}) backend.fill_uniform(*t, seed++, -1.0f, 1.0f);
  const LayerWeights& lw = model.weights().layers[0];
  struct Group {
    const char* name;
    Tensor x, weight, bias, out;
    std::vector<std::pair<LoraModule, Tensor>> modules;
    bool silu = false;  // the gate/up product with SiLU-mul into act, as the model runs it
  };
  const std::vector<Group> groups = {
      {"q/k/v", x, lw.qkv, lw.qkv_bias, qkv,
       {{LoraModule::kQ, qkv.col_slice(0, q)}, {LoraModule::kK, qkv.col_slice(q, kvs)},
        {LoraModule::kV, qkv.col_slice(q + kvs, kvs)}}},
      {"o", attn, lw.o, lw.o_bias, proj, {{LoraModule::kO, proj}}},
      {"gate/up", x, lw.gate_up, lw.gate_up_bias, gu,
       {{LoraModule::kGate, gu.col_slice(0, inter)}, {LoraModule::kUp, gu.col_slice(inter, inter)}}, true},
      {"down", act, lw.down, lw.down_bias, proj, {{LoraModule::kDown, proj}}}};
  std::printf("\nLoRA ops at %s, layer 0, rank %d (timed alone, median of 20, launch included): lora_group alone (GB/s "
              "of adapter bytes), then the projection (linear; gate/up: linear_silu_mul) and the projection with its "
              "LoRA (linear_lora; gate/up: linear_lora_silu_mul), as the model runs them:\n",
              label.c_str(), args.lora_rank);
  std::printf("  %-8s %9s %8s %9s %8s %9s %9s %9s %9s\n", "group", "one us", "GB/s", "dist. us", "GB/s", "linear us",
              "+one us", "+dist. us", "x layers");
  double total[2] = {0, 0}, fused[2] = {0, 0};
  const int modes = seqs > 1 ? 2 : 1;  // one adapter; one per sequence
  for (const Group& g : groups) {
    double us[2] = {0, 0}, gbs[2] = {0, 0}, with[2] = {0, 0};
    for (int which = 0; which < modes; ++which) {
      ForwardBatch fb = batch_fb;
      assign_adapters(fb, which == 0 ? Adapters::kOne : Adapters::kDistinct, lora->num_slots());
      auto packed = pack_batch(fb, kv.block_size(), kv.num_blocks(), c.vocab_size, lora->num_slots());
      LS_CHECK(packed.is_ok()) << packed.status().to_string();
      const BatchMeta meta = backend.upload_batch(packed->meta);
      LoraModuleWeights w[3];
      Tensor ys[3];
      double bytes = 0;
      const auto n = static_cast<int>(g.modules.size());
      for (int i = 0; i < n; ++i) {
        w[i] = lora->module(0, g.modules[i].first);
        ys[i] = g.modules[i].second;
        bytes += 2.0 * args.lora_rank * (w[i].in_dim + w[i].out_dim);
      }
      const int32_t adapters = which == 0 ? 1 : std::min(seqs, lora->num_slots());
      us[which] = op_us([&] { backend.lora_group(meta, g.x, w, ys, n); });
      gbs[which] = adapters * bytes / (us[which] * 1e-6) / 1e9;
      total[which] += us[which];
      with[which] = op_us([&] {
        if (g.silu) {
          backend.linear_lora_silu_mul(meta, g.x, g.weight, g.bias, g.out, act, w, ys, n);
        } else {
          backend.linear_lora(meta, g.x, g.weight, g.bias, g.out, w, ys, n);
        }
      });
    }
    const double alone = op_us([&] {
      if (g.silu) {
        backend.linear_silu_mul(g.x, g.weight, g.bias, g.out, act);
      } else {
        backend.linear(g.x, g.weight, g.bias, g.out);
      }
    });
    for (int which = 0; which < modes; ++which) fused[which] += with[which] - alone;
    std::printf("  %-8s %9.1f %8.0f %9.1f %8.0f %9.1f %+9.1f %+9.1f %9.0f\n", g.name, us[0], gbs[0], us[1], gbs[1],
                alone, with[0] - alone, modes > 1 ? with[1] - alone : 0.0, us[modes - 1] * c.num_layers);
  }
  std::printf("  sum x %lld layers: lora_group one adapter %.3f ms, distinct %.3f ms; linear_lora over linear: one "
              "%+.3f ms, distinct %+.3f ms\n", static_cast<long long>(c.num_layers), total[0] * c.num_layers * 1e-3,
              total[1] * c.num_layers * 1e-3, fused[0] * c.num_layers * 1e-3, fused[1] * c.num_layers * 1e-3);
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
  // decode batches of 4-64 rows; linear then silu_mul otherwise).
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
  const double attention = 2.0 * 2.0 * c.num_heads * c.head_dim * (static_cast<double>(T) * (T + 1) / 2) * c.num_layers;
  const double flops = 2.0 * T * layer_params(c) * c.num_layers + attention +
                       2.0 * static_cast<double>(c.vocab_size) * c.hidden_size;
  const double floor_ms = flops / gemm_flops * 1e3;
  double base_ms = 0;
  for (bool adapter : {false, true}) {
    if (adapter && !lora) break;
    ForwardBatch fb = prefill_batch(T, args.block_size, c.vocab_size);
    fb.seqs[0].lora_slot = adapter ? 0 : -1;
    auto once = [&] {
      PackedBatch packed;
      auto logits = model.forward_device(fb, kv, lora, &packed);
      LS_CHECK(logits.is_ok()) << logits.status().to_string();
    };
    for (int i = 0; i < 2; ++i) {
      once();
      backend.synchronize();
    }
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) ms.push_back(cuda_time_ms(backend, once));
    const double t = median(ms);
    if (!adapter) {
      base_ms = t;
      std::printf("\nprefill of %d tokens (one sequence, logits of the last; median of 7): %.2f ms, %.0f tok/s\n", T,
                  t, T / t * 1e3);
      std::printf("  GEMM floor %.2f ms (%.2f TFLOP / %.0f TFLOP/s measured): %.1f%% of the floor rate, %.0f TFLOP/s\n",
                  floor_ms, flops / 1e12, gemm_flops / 1e12, 100.0 * floor_ms / t, flops / (t * 1e-3) / 1e12);
    } else {
      std::printf("  with one rank-%d adapter on all 7 projections: %.2f ms (%+.1f%%)\n", args.lora_rank, t,
                  100.0 * (t / base_ms - 1.0));
    }
  }
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
  if (a.device != "cuda") return fail("engine_bench measures the cuda device (bench/cpu_decode_bench covers the CPU)");
  auto batches = parse_batches(a.batches);
  if (!batches.is_ok()) return fail(batches.status().to_string());
  BackendOptions backend_options = a.backend;
  backend_options.device = a.device;
  auto backend = make_backend(backend_options);
  if (!backend.is_ok()) return fail(backend.status().to_string());
  Backend& b = **backend;
  auto dir = resolve_model_dir(a.model);
  if (!dir.is_ok()) return fail(dir.status().to_string());
  LoadOptions options;
  options.dummy_weights = a.load_format == "dummy";
  auto model = Transformer::load(*dir, b, options);
  if (!model.is_ok()) return fail(model.status().to_string());
  const ModelConfig& c = (*model)->config();
  std::printf("engine_bench: %s (%s weights, %.2f GB) on %s\n", dir->c_str(), a.load_format.c_str(),
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
  std::optional<LoraSlots> slots;
  if (a.lora_rank > 0) {  // one dummy adapter per slot, as many slots as the largest batch
    const int32_t n = batches->back();
    auto created = LoraSlots::create(b, c, n, static_cast<int64_t>(n) * a.lora_rank);
    if (!created.is_ok()) return fail(created.status().to_string());
    slots.emplace(std::move(created).value());
    for (int32_t s = 0; s < n; ++s) {
      const Status st = slots->load_random(s, a.lora_rank, 7000 + s);
      if (!st.is_ok()) return fail(st.to_string());
    }
    run.lora = &*slots;
    std::printf("adapters: %d dummy rank-%d adapters on all 7 projections, %.1f MB each (%.2f GB of arenas)\n", n,
                a.lora_rank, static_cast<double>(slots->bytes_per_rank()) * a.lora_rank / 1e6,
                static_cast<double>(slots->bytes_per_rank()) * slots->rank_capacity() / 1e9);
  }
  run.decode(*batches, run.lora != nullptr);
  CudaBackend* cb = a.compare ? as_cuda_backend(b) : nullptr;
  if (cb) {  // the projection paths not taken, for comparison
    const CudaBackendOptions chosen = cb->options();
    std::vector<int32_t> small, large;
    for (int32_t batch : *batches) (batch <= 4 ? small : large).push_back(batch);
    if (!small.empty()) {
      CudaBackendOptions other = chosen;
      other.gemv_rows = chosen.gemv_rows == CudaBackendOptions::kMaxGemvRows ? 0 : CudaBackendOptions::kMaxGemvRows;
      cb->set_options(other);
      std::printf("\nthe same with the GEMV kernel for %s of 1-4 rows (else the skinny GEMM):",
                  other.gemv_rows ? "every projection" : "no projection");
      run.decode(small, false);
      cb->set_options(chosen);
    }
    if (run.lora &&
        (chosen.lora_overlap || chosen.lora_bulk_expand || chosen.lora_fused_gemv || chosen.lora_fused_skinny ||
         chosen.lora_into_norm != CudaBackendOptions::LoraInto::kOff ||
         chosen.lora_sums_beside != CudaBackendOptions::LoraInto::kOff)) {
      CudaBackendOptions other = chosen;
      other.lora_overlap = other.lora_bulk_expand = other.lora_fused_gemv = other.lora_fused_skinny = false;
      other.lora_into_norm = other.lora_sums_beside = CudaBackendOptions::LoraInto::kOff;
      cb->set_options(other);
      std::printf("\nthe same with the LoRA kernels after their projection (shrink and mma expand, none fused):");
      run.decode(*batches, true);
      cb->set_options(chosen);
    }
    if (!large.empty()) {
      using Skinny = CudaBackendOptions::Skinny;
      const bool off = chosen.skinny == Skinny::kOff;
      CudaBackendOptions other = chosen;
      other.skinny = off ? Skinny::kAuto : Skinny::kOff;
      cb->set_options(other);
      std::printf("\nthe same with the skinny weight-streaming GEMM %s for 5-64 rows:",
                  off ? "where it measured faster (instead of cuBLASLt and a separate SiLU-mul)"
                      : "off (cuBLASLt for every projection, SiLU-mul separate)");
      run.decode(large, false);
      cb->set_options(chosen);
    }
  }
  run.prefill();
  if (a.breakdown) {
    for (int32_t batch : *batches) {
      const ForwardBatch fb = decode_batch(batch, a.context, blocks_per_seq, c.vocab_size);
      run.breakdown(fb, "decode batch " + std::to_string(batch) + " at context " + std::to_string(a.context));
      if (run.lora) run.lora_ops(fb, "decode batch " + std::to_string(batch));
    }
    const ForwardBatch prefill = prefill_batch(a.prefill, a.block_size, c.vocab_size);
    const std::string label = "prefill of " + std::to_string(a.prefill) + " tokens";
    run.breakdown(prefill, label);
    if (run.lora) run.lora_ops(prefill, label);
  }
  if (CudaBackend* cuda = a.gemm_plans ? as_cuda_backend(b) : nullptr) {
    std::printf("\ncuBLASLt plans:\n");
    for (const std::string& line : cuda->gemm_plans()) std::printf("  %s\n", line.c_str());
  }
  return 0;
}

// The CUDA backend's kernel-path flags, each a field of CudaBackendOptions (defaults: the fastest measured).
void add_cuda_backend_options(CLI::App& cmd, CudaBackendOptions& o) {
  using Skinny = CudaBackendOptions::Skinny;
  using Decode = CudaBackendOptions::DecodeAttention;
  using Tune = CudaBackendOptions::GemmTune;
  const std::map<std::string, bool> on_off = {{"on", true}, {"off", false}};
  cmd.add_option("--gemv-rows", o.gemv_rows, "cuda: projections of up to this many rows take the weight-streaming GEMV")
      ->check(CLI::Range(0, CudaBackendOptions::kMaxGemvRows));
  cmd.add_option("--gemv-silu", o.gemv_silu, "cuda: SiLU-mul in the epilogue of the GEMV's gate/up product (on, off)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--skinny", o.skinny, "cuda: skinny weight-streaming GEMM for 3-128 rows (auto, off, all)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, Skinny>{{"off", Skinny::kOff}, {"auto", Skinny::kAuto}, {"all", Skinny::kAll}}));
  cmd.add_option("--decode-attention", o.decode_attention, "cuda: decode attention kernel (tensor-core, simt)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, Decode>{{"tensor-core", Decode::kTensorCore}, {"simt", Decode::kSimt}}));
  cmd.add_option("--pdl", o.pdl, "cuda: programmatic dependent launch between kernels (on, off)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--gemm-tune", o.gemm_tune,
                 "cuda: cuBLASLt plan choice (cold: timed on cold L2, warm: timed on warm L2, off: heuristic, search: "
                 "more candidates and their K-split variants timed cold)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, Tune>{
              {"cold", Tune::kCold}, {"warm", Tune::kWarm}, {"off", Tune::kOff}, {"search", Tune::kSearch}}));
  cmd.add_option("--lora-overlap", o.lora_overlap, "cuda: LoRA shrink on a graph branch beside its projection (on, off)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--lora-shared", o.lora_shared,
                 "cuda: decode steps sharing one adapter take kernels that read its B once per 32 rows (on, off)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--lora-beside-sms", o.lora_beside_sms,
                 "cuda: SMs a projection leaves to the LoRA kernels beside it (default 0; at most half)")
      ->check(CLI::Range(0, 1024));
  cmd.add_option("--lora-bulk-expand", o.lora_bulk_expand,
                 "cuda: decode steps' LoRA expand from bulk copies of B (on, off: the mma expand)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--lora-fused-gemv", o.lora_fused_gemv,
                 "cuda: projections the GEMV takes add their LoRA in its launch (on, off: separate kernels)")
      ->transform(CLI::CheckedTransformer(on_off));
  cmd.add_option("--lora-fused-skinny", o.lora_fused_skinny,
                 "cuda: 3-8 row gate/up products add their LoRA in the fused SiLU kernel (on, off: separate kernels)")
      ->transform(CLI::CheckedTransformer(on_off));
  const std::map<std::string, CudaBackendOptions::LoraInto> into = {{"off", CudaBackendOptions::LoraInto::kOff},
                                                                    {"auto", CudaBackendOptions::LoraInto::kAuto},
                                                                    {"all", CudaBackendOptions::LoraInto::kAll}};
  cmd.add_option("--lora-into-norm", o.lora_into_norm,
                 "cuda: decode steps' o and down LoRA deltas added by the RMSNorm that reads them (off: an expand "
                 "kernel; auto, all)")
      ->transform(CLI::CheckedTransformer(into));
  cmd.add_option("--lora-sums-beside", o.lora_sums_beside,
                 "cuda: decode steps' LoRA expands beside their projections, into fp32 deltas the next kernel (RoPE, "
                 "RMSNorm, SiLU-mul) adds (off: an expand after the projection; auto, all)")
      ->transform(CLI::CheckedTransformer(into));
}

}  // namespace

}  // namespace ls

int main(int argc, char** argv) {
  ls::BenchArgs args;
  CLI::App app{"engine_bench: decode steps and a prefill on the GPU against their floors"};
  app.add_option("--model", args.model, "model directory (config.json is enough with --load-format dummy)")->required();
  app.add_option("--load-format", args.load_format, "dummy (default: random weights) or safetensors")
      ->check(CLI::IsMember({"dummy", "safetensors", "auto"}));
  app.add_option("--device", args.device, "cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--batches", args.batches, "decode batch sizes, comma-separated (default 1,32,128)");
  app.add_option("--context", args.context, "tokens of context per decode sequence (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--replays", args.replays, "graph replays per batch size (default 100)")->check(CLI::Range(1, 100000));
  app.add_option("--prefill", args.prefill, "prompt tokens of the prefill measurement (default 1024)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--block-size", args.block_size, "KV block size (default 16)")->check(CLI::Range(1, 1024));
  app.add_flag("!--no-breakdown", args.breakdown, "skip the per-op breakdown");
  app.add_flag("!--no-compare", args.compare,
               "skip the decode steps on the paths not chosen (GEMV, unfused LoRA, skinny GEMM off)");
  app.add_flag("--profile-steps", args.profile_steps,
               "replay each decode step once more inside a profiler range, for `ncu --profile-from-start off "
               "--graph-profiling node` (each kernel of one step per batch size and adapter mix)");
  app.add_flag("--gemm-plans", args.gemm_plans,
               "print the cuBLASLt plans (shape, configuration, tuning time) at the end");
  app.add_option("--lora-rank", args.lora_rank, "rank of the dummy adapters (default 16; 0: no adapter runs)")
      ->check(CLI::Range(0, static_cast<int>(ls::kLoraMaxRank)));
  ls::add_cuda_backend_options(app, args.backend.cuda);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return ls::run_bench(args);
}

