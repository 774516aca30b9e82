// cuda_lora_sampling_test.cpp: the multi-LoRA op and sampling of the CUDA backend against the CPU twins.
// LoRA: mixed batches of 1, 7 and 99 tokens whose segments use slots of ranks 8, 16 and 5, a slot of rank 0
// and slot -1, into column slices of a wider output. Sampling: the same token as the CPU from the same logits
// and seeds under every filter combination, and a row's token does not depend on the rows beside it.
#include <algorithm>
#include <cmath>

#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaLora = CudaOpTest;
using CudaSampling = CudaOpTest;

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
    // The CPU lora op reads A and B as upload_lora stores them (B transposed).
    p.cpu->upload_lora(t.a.back().cpu.data, t.b.back().cpu.data, t.a.back().host.data(), t.b.back().host.data(), r, in,
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

TEST_F(CudaLora, MixedSegmentsMatchCpu) {
  SCOPED_TRACE(trace());
  const std::vector<int32_t> ranks = {8, 16, 0, 5};
  for (auto [in, out] : {std::pair<int64_t, int64_t>{64, 96}, {4096, 1024}, {200, 14336}}) {
    SlotTables slots = make_slots(p_, rng_, ranks, in, out);
    for (int32_t total : {1, 7, 99}) {
      // Sequences of random lengths and slots (-1 .. 3), in random order: segments of every kind.
      ForwardBatch fb;
      int32_t left = total;
      while (left > 0) {
        SequenceStep s;
        const int32_t n = std::min<int32_t>(left, 1 + static_cast<int32_t>(rng_() % 20));
        s.tokens.assign(n, 1);
        s.block_table = {0, 0};
        s.lora_slot = static_cast<int32_t>(rng_() % 5) - 1;
        s.logits = LogitsWanted::kNone;
        fb.seqs.push_back(s);
        left -= n;
      }
      Meta m = meta(fb, 16, 1, 10, static_cast<int32_t>(ranks.size()));
      Twin x = make_twin(p_, total, in, rng_, -1, 1, in + 8, 8);
      Twin y = make_twin(p_, total, out, rng_, -1, 1, out + 24, 16);  // a slice, as q/k/v of the fused QKV
      p_.cpu->lora(m.packed.meta, x.cpu, slots.cpu, y.cpu);
      p_.gpu->lora(m.gpu, x.gpu, slots.gpu, y.gpu);
      const std::vector<float> before = y.host, cpu = download(*p_.cpu, y.cpu), gpu = download(*p_.gpu, y.gpu);
      // Compare the added parts, which are small next to y itself.
      std::vector<float> dc(cpu.size()), dg(gpu.size());
      for (size_t i = 0; i < cpu.size(); ++i) {
        dc[i] = cpu[i] - before[i];
        dg[i] = gpu[i] - before[i];
      }
      EXPECT_LT(rel_error(gpu, cpu), 1e-2) << "in " << in << " out " << out << " tokens " << total;
      EXPECT_LT(rel_error(dg, dc), 5e-2) << "delta, in " << in << " out " << out << " tokens " << total;
      // Rows of slot -1 and of the rank-0 slot stay exactly as they were.
      for (int32_t t = 0; t < total; ++t) {
        const int32_t slot = m.packed.token_lora_slot[t];
        if (slot >= 0 && ranks[slot] > 0) continue;
        for (int64_t c = 0; c < out; ++c) ASSERT_EQ(gpu[t * out + c], before[t * out + c]) << "token " << t;
      }
    }
  }
}

std::vector<SamplingParams> param_grid(std::mt19937& rng, int rows) {
  std::vector<SamplingParams> v;
  for (int r = 0; r < rows; ++r) {
    SamplingParams p;
    switch (r % 8) {
      case 0: break;  // greedy
      case 1: p.temperature = 1.0f; break;
      case 2: p.temperature = 0.7f; p.top_k = 40; break;
      case 3: p.temperature = 1.3f; p.top_p = 0.9f; break;
      case 4: p.temperature = 1.0f; p.min_p = 0.05f; break;
      case 5: p.temperature = 0.8f; p.top_k = 1; break;
      case 6: p.temperature = 1.0f; p.top_k = 100; p.top_p = 0.5f; p.min_p = 0.02f; break;
      default: p.temperature = 2.0f; p.top_p = 0.99f; break;
    }
    p.seed = rng();
    p.step = rng() % 1000;
    v.push_back(p);
  }
  return v;
}

std::vector<int32_t> sample_on(Backend& b, const Tensor& logits, const std::vector<SamplingParams>& params) {
  Buffer tokens = upload_ints(b, std::vector<int32_t>(logits.rows, -1));
  b.sample(logits, params.data(), static_cast<int32_t*>(tokens.data()));
  return download_ints(b, tokens.data(), logits.rows);
}

TEST_F(CudaSampling, SameTokensAsCpu) {
  SCOPED_TRACE(trace());
  for (int64_t vocab : {1000, 128256}) {
    for (int rows : {1, 7, 99}) {
      // Peaked rows (a few large logits), as language models produce.
      Twin logits = make_twin(p_, rows, vocab, rng_, -5, 5, 0, 0, true);
      std::vector<float> host = logits.host;
      for (int r = 0; r < rows; ++r)
        for (int i = 0; i < 20; ++i) host[r * vocab + rng_() % vocab] += 8.0f * (i % 4);
      set_twin(p_, logits, host);
      const std::vector<SamplingParams> params = param_grid(rng_, rows);
      const std::vector<int32_t> cpu = sample_on(*p_.cpu, logits.cpu, params);
      const std::vector<int32_t> gpu = sample_on(*p_.gpu, logits.gpu, params);
      EXPECT_EQ(gpu, cpu) << "vocab " << vocab << " rows " << rows;
      // Greedy rows are the argmax; every token is in range.
      for (int r = 0; r < rows; ++r) {
        ASSERT_GE(gpu[r], 0);
        ASSERT_LT(gpu[r], vocab);
        if (params[r].temperature == 0.0f) {
          const float* row = host.data() + r * vocab;
          EXPECT_EQ(gpu[r], std::max_element(row, row + vocab) - row);
        }
      }
    }
  }
}

TEST_F(CudaSampling, RowIndependentOfBatch) {
  SCOPED_TRACE(trace());
  const int64_t vocab = 32000;
  Twin logits = make_twin(p_, 16, vocab, rng_, -3, 3, 0, 0, true);
  const std::vector<SamplingParams> params = param_grid(rng_, 16);
  const std::vector<int32_t> together = sample_on(*p_.gpu, logits.gpu, params);
  for (int r = 0; r < 16; ++r) {
    const std::vector<int32_t> alone = sample_on(*p_.gpu, logits.gpu.row_slice(r, 1), {params[r]});
    EXPECT_EQ(alone[0], together[r]) << "row " << r;
  }
}

}  // namespace
}  // namespace ls::testing
