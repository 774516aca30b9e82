// mixed_batch_test.cpp: multi-LoRA batching invariants on the CPU engine. All oracle paths of one model (the base
// and every adapter, 24 sequences) run together: each step's ForwardBatch holds every unfinished sequence, some
// prefilling a chunk of varying size and some decoding one token, in a shuffled order (so one adapter's tokens
// form several segments), over one shared pool of small, scattered KV blocks. Every position's logits must
// equal the sequence's solo run.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

#include "kv/block_pool.h"
#include "lora/lora_slots.h"
#include "model/single_sequence.h"
#include "oracle_cases.h"

namespace ls {
namespace {

struct Sequence {
  std::vector<int32_t> path;
  int32_t slot;
  int32_t done = 0;
  std::unique_ptr<BlockTable> blocks;
  std::vector<std::vector<float>> logits;  // one row per position, filled as the batch runs
};

class MixedBatch : public ::testing::TestWithParam<const char*> {};

TEST_P(MixedBatch, EqualsSoloRuns) {
  const testing::OracleCase c = testing::shared_oracle_case(GetParam());
  auto backend = make_cpu_backend();
  auto model = Transformer::load(c.base_dir, *backend).value();
  const int64_t vocab = model->config().vocab_size;
  const auto num_adapters = static_cast<int32_t>(c.runs.size() - 1);
  LoraSlots slots = LoraSlots::create(*backend, model->config(), num_adapters).value();
  for (int32_t a = 0; a < num_adapters; ++a)
    ASSERT_TRUE(slots.load(a, load_lora_adapter(c.runs[a + 1].adapter_dir, model->config()).value()).is_ok());

  BlockPool pool(512, 4);
  std::vector<Sequence> seqs;
  for (size_t r = 0; r < c.runs.size(); ++r)
    for (const auto& path : c.runs[r].paths)
      seqs.push_back({path, static_cast<int32_t>(r) - 1, 0, std::make_unique<BlockTable>(pool), {}});

  KvCache kv = KvCache::create(*backend, model->config(), pool.num_blocks(), pool.block_size()).value();
  std::mt19937 rng(7);
  int steps = 0;
  for (;; ++steps) {
    std::vector<size_t> active;
    for (size_t s = 0; s < seqs.size(); ++s)
      if (seqs[s].done < static_cast<int32_t>(seqs[s].path.size())) active.push_back(s);
    if (active.empty()) break;
    std::shuffle(active.begin(), active.end(), rng);
    ForwardBatch batch;
    for (size_t s : active) {
      Sequence& q = seqs[s];
      const int32_t left = static_cast<int32_t>(q.path.size()) - q.done;
      // Mostly one token (decode); sometimes a prefill chunk of 2..17 tokens.
      const int32_t n = std::min<int32_t>(left, rng() % 3 == 0 ? 2 + static_cast<int32_t>(rng() % 16) : 1);
      ASSERT_TRUE(q.blocks->reserve(q.done + n).is_ok());
      SequenceStep step;
      step.tokens.assign(q.path.begin() + q.done, q.path.begin() + q.done + n);
      step.num_cached = q.done;
      step.block_table = q.blocks->blocks();
      step.lora_slot = q.slot;
      step.logits = LogitsWanted::kAll;
      batch.seqs.push_back(std::move(step));
    }
    PackedBatch packed;
    auto logits = model->forward_device(batch, kv, &slots, &packed);
    ASSERT_TRUE(logits.is_ok()) << logits.status().to_string();
    std::vector<float> host(static_cast<size_t>(logits->rows * vocab));
    backend->copy_to_host(host.data(), logits->data, host.size() * sizeof(float));
    for (size_t i = 0; i < active.size(); ++i) {
      Sequence& q = seqs[active[i]];
      for (int32_t row = packed.seq_logit_begin[i]; row < packed.seq_logit_begin[i + 1]; ++row)
        q.logits.emplace_back(host.begin() + row * vocab, host.begin() + (row + 1) * vocab);
      q.done += static_cast<int32_t>(batch.seqs[i].tokens.size());
    }
  }
  EXPECT_GT(steps, 20);

  for (const Sequence& q : seqs) {
    SequenceOptions o;
    o.lora = &slots;
    o.lora_slot = q.slot;
    auto solo = sequence_logits(*model, q.path, o);
    ASSERT_TRUE(solo.is_ok());
    ASSERT_EQ(q.logits.size(), q.path.size());
    for (size_t r = 0; r < q.path.size(); ++r)
      for (int64_t v = 0; v < vocab; ++v)
        ASSERT_NEAR(q.logits[r][v], solo.value()[r][v], 1e-4f) << "slot " << q.slot << " row " << r;
  }
  EXPECT_EQ(pool.num_free(), pool.num_blocks() - [&] {
    int32_t used = 0;
    for (const Sequence& q : seqs) used += static_cast<int32_t>(q.blocks->blocks().size());
    return used;
  }());
}

INSTANTIATE_TEST_SUITE_P(Oracle, MixedBatch, ::testing::Values("llama", "mistral"));

}  // namespace
}  // namespace ls
