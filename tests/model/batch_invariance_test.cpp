// batch_invariance_test.cpp: the CPU backend is batch invariant, bit for bit, in every weight format (f32,
// bf16, int8), on the demo model (models/demo) with its four adapters:
//  - mixed batches: 16 teacher-forced paths (the base model and each adapter on held-out task prompts, with
//    the reference answers appended) run together on a 2-thread backend, in a shuffled order each step, some
//    sequences prefilling chunks of 2..17 tokens and some decoding one token, some skipping a step, over one
//    pool of scattered KV blocks: every position's logits equal, bitwise, those of the path run alone in one
//    prefill on a 1-thread backend. So a row depends neither on the batch size, its position in the batch, the
//    adapters of the rows around it, whether it is a prefill chunk or a decode token, nor the thread count;
//  - chunked prefill: a prompt prefilled in one chunk, in uneven chunks, or one token at a time gives bitwise
//    equal logits for every row, the last one included.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/json.h"
#include "kv/block_pool.h"
#include "lora/lora_slots.h"
#include "model/single_sequence.h"

namespace ls {
namespace {

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";
const char* const kAdapters[] = {"calc", "reverse", "sql", "upper"};

struct Engine {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> model;
  std::unique_ptr<LoraSlots> slots;
};

Engine load_engine(int threads, const std::string& weights) {
  Engine e;
  e.backend = make_cpu_backend(threads, weights);
  e.model = Transformer::load(kDemo + "/base", *e.backend).value();
  e.slots = std::make_unique<LoraSlots>(LoraSlots::create(*e.backend, e.model->config(), 4).value());
  for (int32_t s = 0; s < 4; ++s) {
    auto adapter = load_lora_adapter(kDemo + "/adapters/" + kAdapters[s], e.model->config());
    LS_CHECK(adapter.is_ok()) << adapter.status().to_string();
    LS_CHECK(e.slots->load(s, adapter.value()).is_ok());
  }
  return e;
}

struct Path {
  std::vector<int32_t> tokens;
  int32_t slot;  // -1: base model
};

// Prompt + reference answer of the first `per_task` prompts of each task under its adapter, and of the first
// prompt under the base model.
std::vector<Path> demo_paths(int per_task) {
  std::vector<Path> paths;
  for (int32_t s = 0; s < 4; ++s) {
    const Json eval = read_json_file(kDemo + "/eval/" + kAdapters[s] + ".json").value();
    for (int i = 0; i < per_task; ++i) {
      const Json& p = eval.at("prompts")[i];
      for (int32_t slot : {s, -1}) {
        if (slot < 0 && i > 0) continue;  // the base model on the first prompt of each task
        Path path{p.at("prompt_ids").get<std::vector<int32_t>>(), slot};
        const auto answer = p.at(slot < 0 ? "base" : "adapter").at("ids").get<std::vector<int32_t>>();
        path.tokens.insert(path.tokens.end(), answer.begin(), answer.end());
        paths.push_back(std::move(path));
      }
    }
  }
  return paths;
}

std::vector<std::vector<float>> solo_rows(Engine& e, const Path& p) {
  SequenceOptions o;
  o.lora = e.slots.get();
  o.lora_slot = p.slot;
  auto rows = sequence_logits(*e.model, p.tokens, o);
  LS_CHECK(rows.is_ok()) << rows.status().to_string();
  return std::move(rows).value();
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class BatchInvariance : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchInvariance, MixedAdapterBatchesEqualSoloRunsBitwise) {
  Engine solo = load_engine(1, GetParam()), batched = load_engine(2, GetParam());
  const std::vector<Path> paths = demo_paths(3);
  ASSERT_EQ(paths.size(), 16u);
  const int64_t vocab = batched.model->config().vocab_size;

  struct Running {
    int32_t done = 0;
    std::unique_ptr<BlockTable> blocks;
    std::vector<std::vector<float>> rows;
  };
  BlockPool pool(256, 4);
  std::vector<Running> seqs(paths.size());
  for (Running& r : seqs) r.blocks = std::make_unique<BlockTable>(pool);
  KvCache kv = KvCache::create(*batched.backend, batched.model->config(), pool.num_blocks(), pool.block_size()).value();
  std::mt19937 rng(11);
  std::vector<int> batch_sizes;
  for (;;) {
    std::vector<size_t> active;
    for (size_t s = 0; s < paths.size(); ++s)
      if (seqs[s].done < static_cast<int32_t>(paths[s].tokens.size()) && rng() % 5 != 0) active.push_back(s);
    bool finished = true;
    for (size_t s = 0; s < paths.size(); ++s) finished &= seqs[s].done == static_cast<int32_t>(paths[s].tokens.size());
    if (finished) break;
    if (active.empty()) continue;
    std::shuffle(active.begin(), active.end(), rng);
    ForwardBatch batch;
    for (size_t s : active) {
      Running& q = seqs[s];
      const int32_t left = static_cast<int32_t>(paths[s].tokens.size()) - q.done;
      const int32_t n = std::min<int32_t>(left, rng() % 3 == 0 ? 2 + static_cast<int32_t>(rng() % 16) : 1);
      ASSERT_TRUE(q.blocks->reserve(q.done + n).is_ok());
      SequenceStep step;
      step.tokens.assign(paths[s].tokens.begin() + q.done, paths[s].tokens.begin() + q.done + n);
      step.num_cached = q.done;
      step.block_table = q.blocks->blocks();
      step.lora_slot = paths[s].slot;
      step.logits = LogitsWanted::kAll;
      batch.seqs.push_back(std::move(step));
    }
    PackedBatch packed;
    auto logits = batched.model->forward_device(batch, kv, batched.slots.get(), &packed);
    ASSERT_TRUE(logits.is_ok()) << logits.status().to_string();
    batch_sizes.push_back(packed.meta.num_tokens);
    std::vector<float> host(static_cast<size_t>(logits->rows * vocab));
    batched.backend->copy_to_host(host.data(), logits->data, host.size() * sizeof(float));
    for (size_t i = 0; i < active.size(); ++i) {
      Running& q = seqs[active[i]];
      for (int32_t row = packed.seq_logit_begin[i]; row < packed.seq_logit_begin[i + 1]; ++row)
        q.rows.emplace_back(host.begin() + row * vocab, host.begin() + (row + 1) * vocab);
      q.done += static_cast<int32_t>(batch.seqs[i].tokens.size());
    }
  }
  EXPECT_GT(batch_sizes.size(), 20u);
  EXPECT_GT(*std::max_element(batch_sizes.begin(), batch_sizes.end()), 30);

  int compared = 0;
  for (size_t s = 0; s < paths.size(); ++s) {
    const auto want = solo_rows(solo, paths[s]);
    ASSERT_EQ(seqs[s].rows.size(), want.size());
    for (size_t r = 0; r < want.size(); ++r, ++compared)
      ASSERT_TRUE(same_bits(seqs[s].rows[r], want[r])) << GetParam() << ": path " << s << " (slot " << paths[s].slot
                                                       << ") row " << r << " differs from its solo run";
  }
  std::printf("%s: %d rows over %zu steps bitwise equal to solo runs\n", GetParam(), compared, batch_sizes.size());
}

// All rows of one path prefilled in the given chunks (kAll logits), on a private cache.
std::vector<std::vector<float>> chunked_rows(Engine& e, const Path& p, const std::vector<int32_t>& chunks) {
  const int32_t bs = 16, n = static_cast<int32_t>(p.tokens.size());
  KvCache kv = KvCache::create(*e.backend, e.model->config(), (n + bs - 1) / bs, bs).value();
  SequenceStep step;
  for (int32_t b = 0; b < (n + bs - 1) / bs; ++b) step.block_table.push_back(b);
  step.lora_slot = p.slot;
  step.logits = LogitsWanted::kAll;
  std::vector<std::vector<float>> rows;
  const int64_t vocab = e.model->config().vocab_size;
  for (size_t c = 0; step.num_cached < n; ++c) {
    const int32_t len = std::min(c < chunks.size() ? chunks[c] : n, n - step.num_cached);
    step.tokens.assign(p.tokens.begin() + step.num_cached, p.tokens.begin() + step.num_cached + len);
    ForwardBatch batch;
    batch.seqs.push_back(step);
    auto logits = e.model->forward(batch, kv, e.slots.get());
    LS_CHECK(logits.is_ok()) << logits.status().to_string();
    for (int32_t r = 0; r < len; ++r) rows.emplace_back(logits->begin() + r * vocab, logits->begin() + (r + 1) * vocab);
    step.num_cached += len;
  }
  return rows;
}

TEST_P(BatchInvariance, ChunkedPrefillEqualsOneChunkBitwise) {
  Engine e = load_engine(2, GetParam());
  const std::vector<Path> paths = demo_paths(1);
  for (size_t i = 0; i < 4; ++i) {  // calc and reverse, adapter and base
    const Path& p = paths[i];
    const auto n = static_cast<int32_t>(p.tokens.size());
    const auto one = chunked_rows(e, p, {n});
    for (const std::vector<int32_t>& chunks : {std::vector<int32_t>{7, 1, 13}, std::vector<int32_t>{n - 1, 1},
                                               std::vector<int32_t>(static_cast<size_t>(n), 1)}) {
      const auto rows = chunked_rows(e, p, chunks);
      ASSERT_EQ(rows.size(), one.size());
      EXPECT_TRUE(same_bits(rows.back(), one.back())) << GetParam() << " path " << i << ": last row";
      for (size_t r = 0; r < rows.size(); ++r)
        ASSERT_TRUE(same_bits(rows[r], one[r])) << GetParam() << " path " << i << " row " << r << " of " << chunks.size()
                                                << " chunks";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, BatchInvariance, ::testing::Values("f32", "bf16", "int8"));

}  // namespace
}  // namespace ls
