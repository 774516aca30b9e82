// cuda_lora_test.cpp: the multi-LoRA op of the CUDA backend against the CPU twin, and LoraSlots' device arenas.
//  - one module: batches of 1, 7, 99 and 513 tokens whose sequences (single decode tokens and prefill chunks, in
//    random order, so one adapter's tokens form several segments) use slots of ranks 1, 4, 16, 64, 128, 5 and 24,
//    a rank-0 slot and no adapter, into column slices of wider outputs;
//  - lora_group: q/k/v into the column slices of one fused output and gate/up, in one call;
//  - decode steps (a token per segment: the bulk-copy expand) as well as prefill chunks (the mma expand), and
//    decode steps in a graph's padded layout (one adapter, runs, distinct slots, half without; up to 160 rows; at
//    Llama-3-8B's widths, where the expand's column runs are widest);
//  - linear_lora: the projection (with a bias) and its LoRA, fused into the GEMV's launch (1-4 rows; module
//    boundaries inside its groups of 4 features too), the shrink beside it on a second stream, and in line;
//  - linear_lora_silu_mul: the gate/up LoRA in the fused skinny SiLU kernel's epilogue (1-8 rows), added by
//    SiLU-mul from the sums of an expand beside the product, and unfused;
//  - linear_lora_add_rms_norm: the o/down LoRA added by the RMSNorm that reads the projection (from t and B, or
//    from the sums of an expand beside the projection), and unfused;
//  - linear_lora_rope_kv_write: the q/k/v LoRA added by RoPE from the sums of an expand beside the projection,
//    and unfused;
//  - LoraSlots: adapters of mixed ranks staged, loaded beside the ops (polled with is_ready), cleared and
//    reloaded into freed ranges, run through the op against the CPU backend's LoraSlots; out-of-capacity errors.
// Deltas are compared (they are small next to y); rows without an adapter must stay bit-identical.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include "backend/cuda/kernels/skinny_gemm.h"
#include "cuda_test_fixture.h"
#include "lora/lora_slots.h"

namespace ls::testing {
namespace {

using CudaLora = CudaOpTest;

// Delta tolerance: the intermediate t is rounded to bf16 as PEFT rounds it, A and B are bf16.
constexpr double kDeltaTol = 3e-2;
// y starts small, so that the bf16 rounding of y + delta is on the scale of the delta even for rank-1 slots
// (with |y| ~ 1 it alone moved a rank-1 delta by up to 8%).
constexpr float kY = 0.02f;

struct SlotTables {
  std::vector<Twin> a, b;
  Buffer cpu_ptrs, gpu_ptrs, cpu_ranks, gpu_ranks;
  LoraModuleWeights cpu, gpu;
};

SlotTables make_slots(BackendPair& p, std::mt19937& rng, const std::vector<int32_t>& ranks, int64_t in, int64_t out) {
  SlotTables t;
  const auto n = static_cast<int32_t>(ranks.size());
  std::vector<const void*> cpu_a(n), cpu_b(n), gpu_a(n), gpu_b(n);
  for (int32_t s = 0; s < n; ++s) {
    const int32_t r = std::max(ranks[s], 1);
    t.a.push_back(make_twin(p, r, in, rng, -0.1f, 0.1f));
    t.b.push_back(make_twin(p, out, r, rng, -0.1f, 0.1f));
    // The CPU lora op reads A and B as stage_lora lays them out (CPU backend memory is host memory).
    p.cpu->stage_lora(t.a.back().cpu.data, t.b.back().cpu.data, t.a.back().host.data(), t.b.back().host.data(), r, in,
                      out);
    cpu_a[s] = t.a.back().cpu.data;
    cpu_b[s] = t.b.back().cpu.data;
    gpu_a[s] = t.a.back().gpu.data;
    gpu_b[s] = t.b.back().gpu.data;
  }
  auto ptrs = [&](Backend& b, Buffer& buf, const std::vector<const void*>& a, const std::vector<const void*>& bb) {
    buf = b.allocate(2 * n * sizeof(void*)).value();
    b.copy_to_device(buf.data(), a.data(), n * sizeof(void*));
    b.copy_to_device(static_cast<char*>(buf.data()) + n * sizeof(void*), bb.data(), n * sizeof(void*));
  };
  ptrs(*p.cpu, t.cpu_ptrs, cpu_a, cpu_b);
  ptrs(*p.gpu, t.gpu_ptrs, gpu_a, gpu_b);
  t.cpu_ranks = upload_ints(*p.cpu, ranks);
  t.gpu_ranks = upload_ints(*p.gpu, ranks);
  for (auto [w, buf, r] : {std::tuple{&t.cpu, &t.cpu_ptrs, &t.cpu_ranks}, std::tuple{&t.gpu, &t.gpu_ptrs, &t.gpu_ranks}}) {
    const auto* table = static_cast<const void* const*>(buf->data());
    w->a = table;
    w->b = table + n;
    w->ranks = static_cast<const int32_t*>(r->data());
    w->num_slots = n;
    w->max_rank = *std::max_element(ranks.begin(), ranks.end());
    w->in_dim = in;
    w->out_dim = out;
  }
  return t;
}

// Sequences of random lengths (a third single decode tokens; with `decode`, all of them) and slots (-1 ..
// num_slots - 1), in random order. Decode steps take the bulk-copy expand (a segment per one or two tokens).
ForwardBatch random_batch(std::mt19937& rng, int32_t total, int32_t num_slots, bool decode = false) {
  ForwardBatch fb;
  int32_t left = total;
  while (left > 0) {
    SequenceStep s;
    const int32_t n = decode || rng() % 3 == 0 ? 1 : std::min<int32_t>(left, 1 + static_cast<int32_t>(rng() % 40));
    s.tokens.assign(std::min(n, left), 1);
    s.block_table = {0, 0, 0};
    s.lora_slot = static_cast<int32_t>(rng() % (num_slots + 1)) - 1;
    s.logits = LogitsWanted::kNone;
    fb.seqs.push_back(s);
    left -= static_cast<int32_t>(s.tokens.size());
  }
  return fb;
}

std::vector<float> delta(const std::vector<float>& after, const std::vector<float>& before) {
  std::vector<float> d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = after[i] - before[i];
  return d;
}

// Relative error of the GPU's deltas against the CPU's where the GPU stores y + delta in bf16: only the part of each
// element's difference beyond that rounding (half a bf16 ulp of the CPU's value) counts. Without the allowance, a
// batch whose deltas are all small next to y (one token whose t is near zero) fails on the rounding alone (seed
// 2233750642 did: 6%).
double delta_error(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::vector<float>& before) {
  if (gpu.size() != cpu.size()) return std::numeric_limits<double>::infinity();
  std::vector<float> beyond(gpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    const float d = gpu[i] - cpu[i], slack = std::abs(cpu[i]) * 0x1p-8f;
    beyond[i] = cpu[i] - before[i] + (std::abs(d) <= slack ? 0.0f : d - std::copysign(slack, d));
  }
  return rel_error(beyond, delta(cpu, before));
}

// Modules side by side in one fused output y (q/k/v; gate/up): each backend's slot tables and column slices of y.
struct ModuleGroup {
  LoraModuleWeights cpu_w[3], gpu_w[3];
  Tensor cpu_y[3], gpu_y[3];
};
ModuleGroup module_group(const std::vector<SlotTables>& slots, const int64_t* outs, int n, const Twin& y) {
  ModuleGroup g;
  int64_t col = 0;
  for (int i = 0; i < n; ++i) {
    g.cpu_w[i] = slots[i].cpu;
    g.gpu_w[i] = slots[i].gpu;
    g.cpu_y[i] = y.cpu.col_slice(col, outs[i]);
    g.gpu_y[i] = y.gpu.col_slice(col, outs[i]);
    col += outs[i];
  }
  return g;
}

// Each slot's largest rank over the first n modules (0: no module of the slot adapts; its rows keep the
// projection alone).
std::vector<int32_t> any_rank(const std::vector<std::vector<int32_t>>& ranks, size_t n) {
  std::vector<int32_t> r(ranks[0].size(), 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t s = 0; s < r.size(); ++s) r[s] = std::max(r[s], ranks[i][s]);
  return r;
}

// Rows of tokens without an adapter (or a rank-0 one) are exactly as before.
void expect_untouched(const CudaOpTest::Meta& m, const std::vector<int32_t>& ranks, const std::vector<float>& gpu,
                      const std::vector<float>& before, int64_t cols) {
  for (int32_t t = 0; t < m.packed.meta.num_tokens; ++t) {
    const int32_t slot = m.packed.token_lora_slot[t];
    if (slot >= 0 && ranks[slot] > 0) continue;
    for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(gpu[t * cols + c], before[t * cols + c]) << "token " << t;
  }
}

TEST_F(CudaLora, MixedRanksMatchCpu) {
  SCOPED_TRACE(trace());
  const std::vector<int32_t> ranks = {1, 4, 16, 64, 128, 0, 5, 24};
  for (auto [in, out] : {std::pair<int64_t, int64_t>{64, 96}, {4096, 1024}, {200, 14336}, {1024, 8}}) {
    SlotTables slots = make_slots(p_, rng_, ranks, in, out);
    for (auto [total, decode] : {std::pair{1, true}, {7, false}, {7, true}, {99, false}, {99, true}, {513, false},
                                 {513, true}}) {
      if (in * out > 4096 * 1024 && total > 99) continue;  // the CPU twin's time
      Meta m = meta(random_batch(rng_, total, 8, decode), 16, 1, 10, static_cast<int32_t>(ranks.size()));
      Twin x = make_twin(p_, total, in, rng_, -1, 1, in + 8, 8);
      Twin y = make_twin(p_, total, out, rng_, -kY, kY, out + 24, 16);  // a slice, as q/k/v of the fused QKV
      p_.cpu->lora(m.packed.meta, x.cpu, slots.cpu, y.cpu);
      p_.gpu->lora(m.gpu, x.gpu, slots.gpu, y.gpu);
      const std::vector<float> cpu = download(*p_.cpu, y.cpu), gpu = download(*p_.gpu, y.gpu);
      const double err = delta_error(gpu, cpu, y.host);
      EXPECT_LT(err, kDeltaTol) << "in " << in << " out " << out << " tokens " << total;
      std::printf("lora in %5lld out %5lld tokens %3d segments %3d%s: delta rel error %.2e\n",
                  static_cast<long long>(in), static_cast<long long>(out), total, m.packed.meta.num_lora_segments,
                  decode ? " (decode)" : "", err);
      expect_untouched(m, ranks, gpu, y.host, out);
    }
  }
}

// One lora_group on both backends over modules side by side in one fused output (q/k/v; gate/up) with slot
// tables of `ranks` per module: returns the deltas' relative error, and checks that rows without an adapter of any
// module are untouched.
double group_delta_error(CudaOpTest& f, const CudaOpTest::Meta& m, const std::vector<std::vector<int32_t>>& ranks,
                         int64_t in, const std::vector<int64_t>& outs) {
  const auto n = static_cast<int>(outs.size());
  const int32_t rows = m.packed.meta.num_tokens;
  int64_t width = 0;
  for (int64_t o : outs) width += o;
  std::vector<SlotTables> slots;
  for (int i = 0; i < n; ++i) slots.push_back(make_slots(f.p_, f.rng_, ranks[i], in, outs[i]));
  Twin x = make_twin(f.p_, rows, in, f.rng_);
  Twin y = make_twin(f.p_, rows, width, f.rng_, -kY, kY);
  const ModuleGroup g = module_group(slots, outs.data(), n, y);
  f.p_.cpu->lora_group(m.packed.meta, x.cpu, g.cpu_w, g.cpu_y, n);
  f.p_.gpu->lora_group(m.gpu, x.gpu, g.gpu_w, g.gpu_y, n);
  const std::vector<float> cpu = download(*f.p_.cpu, y.cpu), gpu = download(*f.p_.gpu, y.gpu);
  expect_untouched(m, any_rank(ranks, outs.size()), gpu, y.host, width);
  return delta_error(gpu, cpu, y.host);
}

// q/k/v of a fused [T, q + 2 kv] output and gate/up of a [T, 2 I] output, one lora_group each, against the CPU's
// per-module ops; modules of different ranks per slot (one slot adapts k only).
TEST_F(CudaLora, GroupsMatchCpu) {
  SCOPED_TRACE(trace());
  const int64_t in = 512, q = 512, kv = 128, inter = 1408;
  const std::vector<std::vector<int32_t>> ranks = {{8, 16, 0, 32}, {8, 3, 16, 32}, {8, 16, 0, 64}};
  for (auto [total, decode] : {std::pair{1, true}, {7, false}, {99, false}, {99, true}, {513, false}, {513, true}}) {
    for (const auto& outs : {std::vector<int64_t>{q, kv, kv}, std::vector<int64_t>{inter, inter}}) {
      const Meta m = meta(random_batch(rng_, total, 4, decode), 16, 1, 10, 4);
      EXPECT_LT(group_delta_error(*this, m, ranks, in, outs), kDeltaTol)
          << outs.size() << " modules, tokens " << total << (decode ? " (decode)" : "");
    }
  }
}

enum class Mix { kOne, kTwoRuns, kDistinct, kHalfBase };

// Decode steps in a graph's padded layout (the segment list padded with empty segments to one per row, rows past
// the batch's sequences with no adapter): `seqs` of `rows` rows with the adapter mix `mix`, q/k/v of widths q, kv,
// kv and gate/up of width inter each, over inputs of width `in`.
void expect_padded_decode(CudaOpTest& f, int32_t seqs, int32_t rows, Mix mix, int64_t in, int64_t q, int64_t kv,
                          int64_t inter) {
  const std::vector<std::vector<int32_t>> ranks = {{16, 8, 64, 1, 32, 0, 4, 128}, {16, 3, 16, 8, 32, 0, 4, 128},
                                                  {16, 8, 0, 1, 32, 0, 4, 128}};
  const auto num_slots = static_cast<int32_t>(ranks[0].size());
  ForwardBatch fb;
  for (int32_t i = 0; i < seqs; ++i) {
    SequenceStep st;
    st.tokens = {1};
    st.block_table = {0};
    st.logits = LogitsWanted::kNone;
    switch (mix) {
      case Mix::kOne: st.lora_slot = 2; break;
      case Mix::kTwoRuns: st.lora_slot = i < seqs / 3 ? 4 : 0; break;
      case Mix::kDistinct: st.lora_slot = i % num_slots; break;
      case Mix::kHalfBase: st.lora_slot = i % 2 == 0 ? -1 : 7; break;
    }
    fb.seqs.push_back(st);
  }
  PackLayout layout;
  layout.pad_to_seqs = rows;
  layout.block_table_width = 1;
  const CudaOpTest::Meta m = f.meta(fb, 16, 1, 10, num_slots, layout);
  for (const auto& outs : {std::vector<int64_t>{q, kv, kv}, std::vector<int64_t>{inter, inter}}) {
    const double err = group_delta_error(f, m, ranks, in, outs);
    EXPECT_LT(err, kDeltaTol) << outs.size() << " modules of in " << in << ", " << seqs << " of " << rows
                              << " rows, mix " << static_cast<int>(mix);
    std::printf("padded decode, in %4lld, %zu modules, %3d of %3d rows, mix %d, %3d segments: delta rel error %.2e\n",
                static_cast<long long>(in), outs.size(), seqs, rows, static_cast<int>(mix),
                m.packed.meta.num_lora_segments, err);
  }
}

// The shapes whose tile count the kernels find at run time: every token on one adapter (few tiles: the expand
// narrows its column runs), runs of two adapters, a distinct slot per token, half the tokens with no adapter; 24
// of 32 rows, 128 of 128, and 150 of 160 (segment scans past one round).
TEST_F(CudaLora, PaddedDecodeStepsMatchCpu) {
  SCOPED_TRACE(trace());
  for (auto [seqs, rows] : {std::pair{24, 32}, {128, 128}, {150, 160}})
    for (Mix mix : {Mix::kOne, Mix::kTwoRuns, Mix::kDistinct, Mix::kHalfBase})
      expect_padded_decode(*this, seqs, rows, mix, 512, 512, 128, 1408);
}

// Llama-3-8B's widths at 32 and 128 rows: a tile per token gives the expand its widest column runs (at 128 rows
// 2048 columns of q/k/v and 7168 of gate/up per block, so that the grid fits one wave), one adapter its narrowest.
TEST_F(CudaLora, PaddedDecodeStepsAtModelWidthsMatchCpu) {
  SCOPED_TRACE(trace());
  for (int32_t rows : {32, 128})
    for (Mix mix : {Mix::kOne, Mix::kDistinct}) expect_padded_decode(*this, rows, rows, mix, 4096, 4096, 1024, 14336);
}

// linear_lora: the projection (with a bias) and the q/k/v LoRA into its column slices, against the CPU's linear
// then lora_group: fused into the GEMV's launch (decode steps and short chunks of 1-4 rows: ranks 1 to 128 whose
// shrink takes one to eight passes, slots shared by several tokens or not, tokens without an adapter), with the
// shrink on the side branch (beside the skinny GEMM, K split or not, at 5-8 rows), and in line; decode steps and
// prefill chunks.
TEST_F(CudaLora, LinearLoraMatchesCpu) {
  SCOPED_TRACE(trace());
  const std::vector<std::vector<int32_t>> ranks = {{8, 16, 0, 32, 128}, {8, 3, 16, 1, 128}, {8, 16, 0, 64, 5}};
  const std::vector<int32_t> adapted = any_rank(ranks, ranks.size());
  struct Path {
    bool fused, overlap;
    const char* name;
  };
  // Llama-like q/k/v slices, odd ones whose module boundaries fall inside the GEMV's groups of 4 features, and a
  // K long enough for the skinny GEMM (5-8 rows) to split it.
  for (auto [in, q, kv] : {std::tuple<int64_t, int64_t, int64_t>{512, 512, 128}, {200, 102, 38}, {1024, 264, 40}}) {
    const int64_t width = q + 2 * kv, outs[3] = {q, kv, kv};
    std::vector<SlotTables> slots;
    for (int i = 0; i < 3; ++i) slots.push_back(make_slots(p_, rng_, ranks[i], in, outs[i]));
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    Twin w = make_twin(p_, width, in, rng_, -bound, bound);
    Twin bias = make_twin(p_, 1, width, rng_, -bound, bound);
    for (const Path& path : {Path{true, true, "fused"}, Path{false, true, "overlapped"}, Path{false, false, "in line"}}) {
      set_cuda_options([&](CudaBackendOptions& o) {
        o.lora_fused_gemv = path.fused;
        o.lora_overlap = path.overlap;
      });
      for (auto [total, decode] : {std::pair{1, true}, {2, true}, {3, true}, {4, true}, {4, false}, {5, true},
                                   {7, false}, {8, true}, {64, true}, {99, false}}) {
        for (int rep = 0; rep < (total <= 8 ? 4 : 1); ++rep) {  // short batches: several adapter mixes
          Meta m = meta(random_batch(rng_, total, 5, decode), 16, 1, 10, 5);
          Twin x = make_twin(p_, total, in, rng_);
          Twin y = make_twin(p_, total, width, rng_), base = make_twin(p_, total, width, rng_);
          p_.cpu->linear(x.cpu, w.cpu, bias.cpu, base.cpu);
          p_.gpu->linear(x.gpu, w.gpu, bias.gpu, base.gpu);
          const ModuleGroup g = module_group(slots, outs, 3, y);
          p_.cpu->linear_lora(m.packed.meta, x.cpu, w.cpu, bias.cpu, y.cpu, g.cpu_w, g.cpu_y, 3);
          p_.gpu->linear_lora(m.gpu, x.gpu, w.gpu, bias.gpu, y.gpu, g.gpu_w, g.gpu_y, 3);
          // The LoRA part: the output less the projection alone (a delta lost to a race would show whole).
          const std::vector<float> gpu = download(*p_.gpu, y.gpu), gpu_base = download(*p_.gpu, base.gpu);
          const double err =
              rel_error(delta(gpu, gpu_base), delta(download(*p_.cpu, y.cpu), download(*p_.cpu, base.cpu)));
          EXPECT_LT(err, kDeltaTol) << "in " << in << " width " << width << ", tokens " << total << ", " << path.name
                                    << ", mix " << rep;
          expect_untouched(m, adapted, gpu, gpu_base, width);
        }
      }
    }
  }
}

// linear_lora_silu_mul: the gate/up product with the gate and up LoRA added before the activation, against the
// CPU's linear_lora then silu_mul: the fused skinny kernel's epilogue (1-8 rows; ranks up to 16 staged once, and
// ranks 32-128 in passes; odd ranks on the CUDA cores; rows without an adapter; only one of the two modules
// adapted), the GEMV's launch with SiLU-mul (1-2 rows, the skinny kernel not forced), and the unfused paths (the
// skinny epilogue off at 3-8 rows, and 16 and 33 rows): the expand into sums beside the product, added by SiLU-mul,
// and the expand after the product; SiLU-mul adding the deltas from t for rows sharing one adapter (every row on
// one slot, and a mix flagged as shared: rows of other slots); random batches and a graph's padded decode layout. The
// projection is kept small next to the deltas, so the output is mostly the LoRA's. Rows without an adapter keep the
// bits of linear_silu_mul where both take one kernel.
TEST_F(CudaLora, LinearLoraSiluMulMatchesCpu) {
  SCOPED_TRACE(trace());
  const std::vector<std::vector<std::vector<int32_t>>> rank_sets = {
      {{16, 4, 1, 0, 8}, {16, 0, 3, 16, 8}},       // one pass
      {{8, 16, 0, 32, 128}, {8, 3, 16, 1, 128}}};  // passes of 16
  for (auto [inter, k] : {std::pair<int64_t, int64_t>{1408, 512}, {640, 200}}) {
    const float bound = 0.1f / std::sqrt(static_cast<float>(k));
    Twin w = make_twin(p_, 2 * inter, k, rng_, -bound, bound);
    Twin bias = make_twin(p_, 1, 2 * inter, rng_, -0.01f, 0.01f);
    for (const auto& ranks : rank_sets) {
      const auto num_slots = static_cast<int32_t>(ranks[0].size());
      std::vector<SlotTables> slots;
      for (int i = 0; i < 2; ++i) slots.push_back(make_slots(p_, rng_, ranks[i], k, inter));
      for (const char* path : {"fused", "sums beside", "expand", "shared uniform", "shared mixed"}) {
        const bool fused = path[0] == 'f', shared = path[0] == 's' && path[1] == 'h';
        set_cuda_options([&](CudaBackendOptions& o) {  // fused: the skinny kernel from 1 row
          o.lora_fused_skinny = fused;
          o.skinny = fused ? CudaBackendOptions::Skinny::kAll : CudaBackendOptions::Skinny::kAuto;
          o.lora_sums_beside = path == std::string("sums beside") ? CudaBackendOptions::LoraInto::kAll
                                                                  : CudaBackendOptions::LoraInto::kOff;
          o.lora_shared = shared;
        });
        for (auto [total, padded] : {std::pair{1, false}, {2, false}, {3, false}, {4, false}, {5, false},
                                     {7, false}, {8, false}, {6, true}, {16, false}, {33, false}}) {
          // Both modules, the gate alone, the up alone.
          for (auto [first, count] : {std::pair{0, 2}, {0, 1}, {1, 1}}) {
            ForwardBatch fb = random_batch(rng_, total, num_slots, /*decode=*/padded || total % 2 == 0);
            // Shared: every sequence on one slot (rank 16 held in registers, or above it, or 0: none), or the
            // random mix flagged as shared anyway (the kernel's rows of other slots).
            const int32_t one = (total + first) % num_slots;
            if (path == std::string("shared uniform"))
              for (SequenceStep& s : fb.seqs) s.lora_slot = one;
            PackLayout layout;
            if (padded) {
              layout.pad_to_seqs = 8;
              layout.block_table_width = 3;
            }
            Meta m = meta(fb, 16, 1, 10, num_slots, layout);
            if (path == std::string("shared mixed")) m.gpu.lora_shared = true;
            const int64_t rows = m.packed.meta.num_tokens;
            Twin x = make_twin(p_, rows, k, rng_);
            Twin gate_up = make_twin(p_, rows, 2 * inter, rng_);
            Twin out = make_twin(p_, rows, inter, rng_), base = make_twin(p_, rows, inter, rng_);
            LoraModuleWeights cpu_w[2], gpu_w[2];
            Tensor cpu_y[2], gpu_y[2];
            for (int i = 0; i < count; ++i) {
              const int mod = first + i;
              cpu_w[i] = slots[mod].cpu;
              gpu_w[i] = slots[mod].gpu;
              cpu_y[i] = gate_up.cpu.col_slice(mod * inter, inter);
              gpu_y[i] = gate_up.gpu.col_slice(mod * inter, inter);
            }
            poison(*p_.gpu, out.gpu);
            p_.gpu->linear_silu_mul(x.gpu, w.gpu, bias.gpu, gate_up.gpu, base.gpu);
            p_.cpu->linear_lora_silu_mul(m.packed.meta, x.cpu, w.cpu, bias.cpu, gate_up.cpu, out.cpu, cpu_w, cpu_y,
                                         count);
            p_.gpu->linear_lora_silu_mul(m.gpu, x.gpu, w.gpu, bias.gpu, gate_up.gpu, out.gpu, gpu_w, gpu_y, count);
            const std::vector<float> gpu = download(*p_.gpu, out.gpu);
            const double err = rel_error(gpu, download(*p_.cpu, out.cpu));
            EXPECT_LT(err, kDeltaTol) << "inter " << inter << " k " << k << ", " << rows << " rows"
                                      << (padded ? " (padded)" : "") << ", modules " << first << "+" << count
                                      << ", " << path;
            const bool one_kernel = fused ? rows <= cuda::kSkinnyLoraMaxRows : rows <= CudaBackendOptions{}.gemv_rows;
            if (one_kernel) {  // the same kernel without deltas: bit-identical rows
              const std::vector<std::vector<int32_t>> adapted(ranks.begin() + first, ranks.begin() + first + count);
              expect_untouched(m, any_rank(adapted, adapted.size()), gpu, download(*p_.gpu, base.gpu), inter);
            }
          }
        }
      }
    }
  }
}

// linear_lora_add_rms_norm: the o/down projection with its LoRA, the residual add and the next norm, against the
// CPU's linear_lora then add_rms_norm: the deltas added by the norm as it reads y, from t and B (decode steps,
// prefill chunks and padded decode layouts up to 128 rows, ranks 1-128 with odd ones, a module over all or part of
// y's columns) or from the sums an expand beside the projection wrote (up to 130 rows), and the two-kernel path. Compared: the residual's change and the norm's output; rows
// without an adapter keep the bits of linear then add_rms_norm.
TEST_F(CudaLora, LinearLoraAddRmsNormMatchesCpu) {
  SCOPED_TRACE(trace());
  const std::vector<int32_t> ranks = {16, 4, 1, 0, 128, 3, 64};
  const auto num_slots = static_cast<int32_t>(ranks.size());
  for (auto [in, out, col, width] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{512, 256, 0, 256},
                                     {200, 1024, 0, 1024},
                                     {256, 512, 128, 256}}) {
    const float bound = 0.1f / std::sqrt(static_cast<float>(in));
    Twin w = make_twin(p_, out, in, rng_, -bound, bound);
    Twin bias = make_twin(p_, 1, out, rng_, -0.01f, 0.01f);
    Twin norm_w = make_twin(p_, 1, out, rng_, 0.5f, 1.5f);
    SlotTables slots = make_slots(p_, rng_, ranks, in, width);
    for (const char* path : {"into the norm", "sums beside", "expand"}) {
      set_cuda_options([&](CudaBackendOptions& o) {
        using Into = CudaBackendOptions::LoraInto;
        o.lora_into_norm = path[0] == 'i' ? Into::kAll : Into::kOff;
        o.lora_sums_beside = path[0] == 's' ? Into::kAll : Into::kOff;
      });
      for (auto [total, padded] : {std::pair{1, false}, {3, false}, {5, false}, {8, true}, {33, false},
                                   {128, false}, {100, true}, {130, false}}) {
        // Odd totals mix prefill chunks (segments of several rows) in.
        ForwardBatch fb = random_batch(rng_, total, num_slots, /*decode=*/padded || total % 2 == 0);
        PackLayout layout;
        if (padded) {
          layout.pad_to_seqs = total + 24;
          layout.block_table_width = 3;
        }
        const Meta m = meta(fb, 16, 1, 10, num_slots, layout);
        const int64_t rows = m.packed.meta.num_tokens;
        Twin x = make_twin(p_, rows, in, rng_);
        Twin residual = make_twin(p_, rows, out, rng_);
        const std::vector<float> residual0 = residual.host;
        Twin y = make_twin(p_, rows, out, rng_), normed = make_twin(p_, rows, out, rng_);
        Twin base_res = make_twin(p_, rows, out, rng_), base_out = make_twin(p_, rows, out, rng_);
        set_twin(p_, base_res, residual0);
        // The GPU without the LoRA: the bits rows without an adapter must keep.
        p_.gpu->linear(x.gpu, w.gpu, bias.gpu, y.gpu);
        p_.gpu->add_rms_norm(base_res.gpu, y.gpu, norm_w.gpu, 1e-5f, base_out.gpu);
        const LoraModuleWeights cpu_w = slots.cpu, gpu_w = slots.gpu;
        const Tensor cpu_y = y.cpu.col_slice(col, width), gpu_y = y.gpu.col_slice(col, width);
        poison(*p_.gpu, normed.gpu);
        p_.cpu->linear_lora_add_rms_norm(m.packed.meta, x.cpu, w.cpu, bias.cpu, y.cpu, &cpu_w, &cpu_y, 1,
                                         residual.cpu, norm_w.cpu, 1e-5f, normed.cpu);
        p_.gpu->linear_lora_add_rms_norm(m.gpu, x.gpu, w.gpu, bias.gpu, y.gpu, &gpu_w, &gpu_y, 1, residual.gpu,
                                         norm_w.gpu, 1e-5f, normed.gpu);
        const std::vector<float> gpu_res = download(*p_.gpu, residual.gpu), gpu_out = download(*p_.gpu, normed.gpu);
        const std::string what = "in " + std::to_string(in) + " out " + std::to_string(out) + " cols " +
                                 std::to_string(col) + "+" + std::to_string(width) + ", " + std::to_string(rows) +
                                 " rows" + (padded ? " (padded)" : "") + ", " + path;
        EXPECT_LT(delta_error(gpu_res, download(*p_.cpu, residual.cpu), residual0), kDeltaTol) << what;
        EXPECT_LT(rel_error(gpu_out, download(*p_.cpu, normed.cpu)), kDeltaTol) << what;
        expect_untouched(m, ranks, gpu_res, download(*p_.gpu, base_res.gpu), out);
        expect_untouched(m, ranks, gpu_out, download(*p_.gpu, base_out.gpu), out);
      }
    }
  }
}

// linear_lora_rope_kv_write: the q/k/v projection with its LoRA, RoPE and the KV write, against the CPU's
// linear_lora then rope_kv_write: the deltas added by RoPE from the sums an expand beside the projection wrote, or
// from t with a head's B rows held once for 32 rows sharing one adapter (and a mix flagged as shared), and the
// expand after the projection; decode steps and prefill chunks of 1-130 rows, head dims 64 and 128, q/k/v
// adapted or q and v only. Compared: the deltas in the qkv rows (q and k rotated, v) and in the
// cache's k and v rows; rows without an adapter keep the bits of the GPU's path without a LoRA.
TEST_F(CudaLora, LinearLoraRopeKvWriteMatchesCpu) {
  SCOPED_TRACE(trace());
  const std::vector<std::vector<int32_t>> ranks = {
      {16, 4, 1, 0, 128, 3, 64}, {8, 0, 16, 2, 128, 3, 5}, {16, 4, 0, 1, 64, 3, 8}};  // q, k, v
  const auto num_slots = static_cast<int32_t>(ranks[0].size());
  constexpr int32_t kBlock = 16, kBlocksPerSeq = 4;
  for (auto [heads, kv_heads, head_dim, in] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{4, 2, 64, 256}, {8, 2, 128, 200}}) {
    const int64_t q = heads * head_dim, kv = kv_heads * head_dim, width = q + 2 * kv;
    const int64_t outs[3] = {q, kv, kv}, cols[3] = {0, q, q + kv};
    std::vector<SlotTables> slots;
    for (int i = 0; i < 3; ++i) slots.push_back(make_slots(p_, rng_, ranks[i], in, outs[i]));
    const float bound = 0.1f / std::sqrt(static_cast<float>(in));
    Twin w = make_twin(p_, width, in, rng_, -bound, bound);
    Twin bias = make_twin(p_, 1, width, rng_, -0.01f, 0.01f);
    std::vector<float> inv(static_cast<size_t>(head_dim / 2));
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(10000.0f, -2.0f * i / head_dim);
    Buffer inv_c = p_.cpu->allocate(inv.size() * 4).value(), inv_g = p_.gpu->allocate(inv.size() * 4).value();
    p_.cpu->copy_to_device(inv_c.data(), inv.data(), inv.size() * 4);
    p_.gpu->copy_to_device(inv_g.data(), inv.data(), inv.size() * 4);
    const auto* fc = static_cast<const float*>(inv_c.data());
    const auto* fg = static_cast<const float*>(inv_g.data());
    for (const std::string path : {"sums beside", "expand", "shared uniform", "shared mixed"}) {
      set_cuda_options([&](CudaBackendOptions& o) {
        using Into = CudaBackendOptions::LoraInto;
        o.lora_sums_beside = path == "sums beside" ? Into::kAll : Into::kOff;
        o.lora_shared = path.rfind("shared", 0) == 0;
      });
      // (Not a graph's padded layout: the CPU twin refuses its padding rows' KV slot -1.)
      for (int total : {1, 3, 8, 33, 100, 130}) {
        for (const std::vector<int>& mods : {std::vector<int>{0, 1, 2}, std::vector<int>{0, 2}}) {
          ForwardBatch fb = random_batch(rng_, total, num_slots, /*decode=*/total % 2 == 0);
          // Shared: every sequence on one slot (ranks 0-128 by turns), or the random mix flagged as shared.
          if (path == "shared uniform")
            for (SequenceStep& st : fb.seqs) st.lora_slot = (total + static_cast<int>(mods.size())) % num_slots;
          for (size_t i = 0; i < fb.seqs.size(); ++i) {  // distinct cache blocks per sequence, some cached context
            SequenceStep& st = fb.seqs[i];
            st.num_cached = static_cast<int32_t>(rng_() % 20);
            st.block_table.clear();
            for (int32_t b = 0; b < kBlocksPerSeq; ++b) st.block_table.push_back(static_cast<int32_t>(i) * 4 + b);
          }
          const auto num_blocks = static_cast<int32_t>(fb.seqs.size()) * kBlocksPerSeq;
          Meta m = meta(fb, kBlock, num_blocks, 10, num_slots);
          if (path == "shared mixed") m.gpu.lora_shared = true;
          const int64_t rows = m.packed.meta.num_tokens;
          Twin x = make_twin(p_, rows, in, rng_);
          // With the LoRA and without (the CPU's deltas; the GPU's bits for rows without an adapter): the qkv rows
          // and a cache each, the caches starting equal.
          Twin y = make_twin(p_, rows, width, rng_), y0 = make_twin(p_, rows, width, rng_);
          CacheTwin cache = make_cache_twin(p_, rng_, kv_heads, head_dim, kBlock, num_blocks);
          CacheTwin cache0 = make_cache_twin(p_, rng_, kv_heads, head_dim, kBlock, num_blocks);
          set_twin(p_, cache0.k, cache.k.host);
          set_twin(p_, cache0.v, cache.v.host);
          LoraModuleWeights cpu_w[3], gpu_w[3];
          Tensor cpu_y[3], gpu_y[3];
          std::vector<std::vector<int32_t>> adapted;
          for (size_t i = 0; i < mods.size(); ++i) {
            const int j = mods[i];
            cpu_w[i] = slots[j].cpu;
            gpu_w[i] = slots[j].gpu;
            cpu_y[i] = y.cpu.col_slice(cols[j], outs[j]);
            gpu_y[i] = y.gpu.col_slice(cols[j], outs[j]);
            adapted.push_back(ranks[j]);
          }
          const int n = static_cast<int>(mods.size());
          auto run = [&](bool gpu, const Twin& out, const CacheTwin& c, int ln) {
            Backend& b = gpu ? *p_.gpu : *p_.cpu;
            const Tensor t = gpu ? out.gpu : out.cpu;
            b.linear_lora_rope_kv_write(gpu ? m.gpu : m.packed.meta, gpu ? x.gpu : x.cpu, gpu ? w.gpu : w.cpu,
                                        gpu ? bias.gpu : bias.cpu, t, gpu ? gpu_w : cpu_w, gpu ? gpu_y : cpu_y, ln,
                                        t.col_slice(0, q), t.col_slice(q, kv), t.col_slice(q + kv, kv), gpu ? fg : fc,
                                        head_dim, gpu ? c.gpu : c.cpu);
          };
          run(false, y, cache, n);
          run(false, y0, cache0, 0);
          run(true, y, cache, n);
          run(true, y0, cache0, 0);
          const std::string what = "heads " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " d " +
                                   std::to_string(head_dim) + ", " + std::to_string(rows) + " rows, " +
                                   std::to_string(n) + " modules, " + path;
          for (auto [t, t0, name] :
               {std::tuple{&y, &y0, "qkv"}, {&cache.k, &cache0.k, "k cache"}, {&cache.v, &cache0.v, "v cache"}}) {
            EXPECT_LT(delta_error(download(*p_.gpu, t->gpu), download(*p_.cpu, t->cpu), download(*p_.cpu, t0->cpu)),
                      kDeltaTol)
                << what << ": " << name;
          }
          expect_untouched(m, any_rank(adapted, adapted.size()), download(*p_.gpu, y.gpu), download(*p_.gpu, y0.gpu),
                           width);
        }
      }
    }
  }
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 100;
  c.hidden_size = 256;
  c.intermediate_size = 704;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  return c;
}

// A host adapter with random weights at `rank` on every module (rank_pattern-style: k at half the rank).
LoraAdapter random_adapter(const ModelConfig& c, int64_t rank, std::mt19937& rng) {
  LoraAdapter a;
  a.layers.resize(static_cast<size_t>(c.num_layers));
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  for (auto& layer : a.layers) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      const ProjectionShape shape = projection_shape(c, static_cast<LoraModule>(m));
      LoraModuleTensors& t = layer[m];
      t.rank = m == static_cast<int>(LoraModule::kK) ? std::max<int64_t>(rank / 2, 1) : rank;
      t.a.resize(static_cast<size_t>(t.rank * shape.in_dim));
      t.b.resize(static_cast<size_t>(shape.out_dim * t.rank));
      for (float& v : t.a) v = u(rng);
      for (float& v : t.b) v = u(rng);
    }
  }
  a.max_rank = rank;
  return a;
}

// One module's op on both backends' slots; the deltas must agree.
void check_module(CudaOpTest& f, LoraSlots& cpu_slots, LoraSlots& gpu_slots, LoraModule module, int32_t tokens,
                  const std::string& what) {
  const ModelConfig c = small_config();
  const ProjectionShape shape = projection_shape(c, module);
  // Slots 0-2 hold adapters (slot 3 stays empty) and -1 none.
  CudaOpTest::Meta m = f.meta(random_batch(f.rng_, tokens, 3), 16, 1, 10, cpu_slots.num_slots());
  Twin x = make_twin(f.p_, tokens, shape.in_dim, f.rng_);
  Twin y = make_twin(f.p_, tokens, shape.out_dim, f.rng_, -kY, kY);
  f.p_.cpu->lora(m.packed.meta, x.cpu, cpu_slots.module(1, module), y.cpu);
  f.p_.gpu->lora(m.gpu, x.gpu, gpu_slots.module(1, module), y.gpu);
  const std::vector<float> cpu = download(*f.p_.cpu, y.cpu), gpu = download(*f.p_.gpu, y.gpu);
  EXPECT_LT(delta_error(gpu, cpu, y.host), kDeltaTol) << what << " " << lora_module_name(module);
}

TEST_F(CudaLora, SlotsLoadBesideTheOps) {
  SCOPED_TRACE(trace());
  const ModelConfig c = small_config();
  // Capacity 64 + 16 + 8 rank rows: exactly the three adapters below.
  LoraSlots cpu_slots = LoraSlots::create(*p_.cpu, c, 4, 88).value();
  LoraSlots gpu_slots = LoraSlots::create(*p_.gpu, c, 4, 88).value();
  const std::vector<LoraAdapter> adapters = {random_adapter(c, 64, rng_), random_adapter(c, 16, rng_),
                                             random_adapter(c, 8, rng_), random_adapter(c, 4, rng_)};
  std::vector<StagedAdapter> staged;
  for (const LoraAdapter& a : adapters) staged.push_back(gpu_slots.stage(a).value());
  for (int32_t s = 0; s < 3; ++s) {
    ASSERT_TRUE(cpu_slots.load(s, adapters[s]).is_ok());
    ASSERT_TRUE(gpu_slots.begin_load(s, staged[s]).is_ok());
  }
  // Full: the fourth adapter does not fit until a slot is cleared.
  const Status full = gpu_slots.begin_load(3, staged[3]);
  EXPECT_EQ(full.code(), ErrorCode::kResourceExhausted) << full.to_string();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int32_t s = 0; s < 3; ++s) {
    while (!gpu_slots.is_ready(s)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "slot " << s << " never became ready";
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    EXPECT_TRUE(gpu_slots.occupied(s));
  }
  for (int m = 0; m < kNumLoraModules; ++m)
    check_module(*this, cpu_slots, gpu_slots, static_cast<LoraModule>(m), 99, "three resident");
  // Clear the rank-16 adapter; the rank-4 one takes part of its range, beside the others.
  cpu_slots.clear(1);
  gpu_slots.clear(1);
  EXPECT_FALSE(gpu_slots.occupied(1));
  ASSERT_TRUE(cpu_slots.load(1, adapters[3]).is_ok());
  ASSERT_TRUE(gpu_slots.begin_load(1, staged[3]).is_ok());
  while (!gpu_slots.is_ready(1)) std::this_thread::sleep_for(std::chrono::microseconds(50));
  for (int32_t tokens : {1, 7, 513})
    for (int m = 0; m < kNumLoraModules; ++m)
      check_module(*this, cpu_slots, gpu_slots, static_cast<LoraModule>(m), tokens, "after reload");
  // An adapter above the largest rank is refused at staging.
  LoraAdapter big = random_adapter(c, 4, rng_);
  big.max_rank = kLoraMaxRank + 1;
  EXPECT_FALSE(gpu_slots.stage(big).is_ok());
}

}  // namespace
}  // namespace ls::testing
