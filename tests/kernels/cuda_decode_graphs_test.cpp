// cuda_decode_graphs_test.cpp: decode steps replayed from CUDA graphs equal the eager forward pass. A small
// random Llama (head dim 64, GQA 4) prefills sequences of different lengths; then decode steps of 1, 3 and 13
// sequences (buckets 1 (GEMV), 4 (padded), 16 (cuBLASLt, padded)) run both ways over two copies of the cache,
// feeding both the same tokens, and every step's logits must agree within bf16 tolerance. Ineligible batches
// (prefill chunks, adapters, too many sequences) are refused, and the CPU backend has no graphs. With adapters:
// decode steps whose sequences switch among adapters of ranks 4, 16 and 64 (and none) at every step, and a slot
// reloaded with a rank-32 adapter between replays, replay the same LoRA graphs and equal the eager pass; so do steps
// whose sequences all share one adapter (their own graphs).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <random>

#include "backend/cuda/cuda_backend.h"
#include "backend_pair.h"
#include "lora/lora_slots.h"
#include "model/decode_graphs.h"

namespace ls::testing {
namespace {

std::string write_model_dir() {
  const auto dir = std::filesystem::temp_directory_path() / "ls_graph_test_model";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 1000, "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 3,
    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false})";
  return dir.string();
}

struct Seq {
  SequenceStep step;
  int32_t length;
};

TEST(CudaDecodeGraphs, MatchEagerSteps) {
  auto backend = make_backend("cuda");
  if (!backend.is_ok()) GTEST_SKIP() << "no GPU: " << backend.status().to_string();
  Backend& b = **backend;
  LoadOptions load;
  load.dummy_weights = true;
  load.dummy_seed = 3;
  auto model = Transformer::load(write_model_dir(), b, load);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  Transformer& m = **model;
  const int32_t bs = 16, blocks_per_seq = 16;  // up to 256 positions
  KvCache kv_eager = KvCache::create(b, m.config(), 13 * blocks_per_seq, bs).value();
  KvCache kv_graph = KvCache::create(b, m.config(), 13 * blocks_per_seq, bs).value();
  DecodeGraphOptions o;
  o.buckets = {1, 4, 16};
  o.max_context = blocks_per_seq * bs;
  auto graphs = DecodeGraphs::create(m, kv_graph, o);
  ASSERT_TRUE(graphs.is_ok()) << graphs.status().to_string();

  for (int32_t n : {1, 3, 13}) {
    // Prefill n prompts of different lengths into both caches.
    std::vector<SequenceStep> seqs(n);
    for (int32_t s = 0; s < n; ++s) {
      for (int32_t i = 0; i < 5 + 11 * s; ++i) seqs[s].tokens.push_back((17 * s + 3 * i) % 1000);
      for (int32_t blk = 0; blk < blocks_per_seq; ++blk) seqs[s].block_table.push_back(s * blocks_per_seq + blk);
      ForwardBatch fb;
      fb.seqs.push_back(seqs[s]);
      ASSERT_TRUE(m.forward(fb, kv_eager, nullptr).is_ok());
      ASSERT_TRUE(m.forward(fb, kv_graph, nullptr).is_ok());
      seqs[s].num_cached = static_cast<int32_t>(seqs[s].tokens.size());
      seqs[s].tokens = {(7 * s + 1) % 1000};
    }
    for (int step = 0; step < 6; ++step) {
      ForwardBatch fb;
      for (const SequenceStep& s : seqs) fb.seqs.push_back(s);
      ASSERT_TRUE((*graphs)->eligible(fb));
      auto eager = m.forward(fb, kv_eager, nullptr);
      ASSERT_TRUE(eager.is_ok());
      auto packed = pack_batch(fb, bs, kv_graph.num_blocks(), m.config().vocab_size, 0, (*graphs)->layout_for(n));
      ASSERT_TRUE(packed.is_ok()) << packed.status().to_string();
      auto logits = (*graphs)->run(packed.value());
      ASSERT_TRUE(logits.is_ok()) << logits.status().to_string();
      EXPECT_EQ(logits->rows, (*graphs)->bucket_for(n));
      const std::vector<float> graph = download(b, logits->row_slice(0, n));
      const double err = rel_error(graph, eager.value());
      EXPECT_LT(err, 2e-2) << "batch " << n << " step " << step;
      std::printf("decode graph batch %2d step %d: rel error vs eager %.2e\n", n, step, err);
      // Both continue with the eager argmax of each row.
      for (int32_t s = 0; s < n; ++s) {
        const float* row = eager.value().data() + s * 1000;
        seqs[s].num_cached += 1;
        seqs[s].tokens = {static_cast<int32_t>(std::max_element(row, row + 1000) - row)};
      }
    }
  }

  ForwardBatch prefill;
  prefill.seqs.push_back({{1, 2}, 0, {0}, -1, LogitsWanted::kLast});
  EXPECT_FALSE((*graphs)->eligible(prefill));
  ForwardBatch adapter;
  adapter.seqs.push_back({{1}, 0, {0}, 0, LogitsWanted::kLast});
  EXPECT_FALSE((*graphs)->eligible(adapter));
  ForwardBatch too_many;
  for (int i = 0; i < 17; ++i) too_many.seqs.push_back({{1}, 0, {i}, -1, LogitsWanted::kLast});
  EXPECT_FALSE((*graphs)->eligible(too_many));
}

TEST(CudaDecodeGraphs, AdapterMixChangesBetweenReplays) {
  auto backend = make_backend("cuda");
  if (!backend.is_ok()) GTEST_SKIP() << "no GPU: " << backend.status().to_string();
  Backend& b = **backend;
  CudaBackend* cuda = as_cuda_backend(b);
  ASSERT_NE(cuda, nullptr);
  CudaBackendOptions shared_kernels = cuda->options();
  shared_kernels.lora_shared = true;  // the graphs of steps sharing one adapter take their kernels
  cuda->set_options(shared_kernels);
  LoadOptions load;
  load.dummy_weights = true;
  load.dummy_seed = 5;
  auto model = Transformer::load(write_model_dir(), b, load);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  Transformer& m = **model;
  LoraSlots slots = LoraSlots::create(b, m.config(), 4, 4 + 16 + 64 + 32).value();
  const int32_t ranks[3] = {4, 16, 64};
  for (int32_t s = 0; s < 3; ++s) ASSERT_TRUE(slots.load_random(s, ranks[s], 40 + s).is_ok());
  const int32_t bs = 16, blocks_per_seq = 16, n = 13;
  KvCache kv_eager = KvCache::create(b, m.config(), n * blocks_per_seq, bs).value();
  KvCache kv_graph = KvCache::create(b, m.config(), n * blocks_per_seq, bs).value();
  DecodeGraphOptions o;
  o.buckets = {4, 16};
  o.max_context = blocks_per_seq * bs;
  auto graphs = DecodeGraphs::create(m, kv_graph, o);
  ASSERT_TRUE(graphs.is_ok()) << graphs.status().to_string();
  std::mt19937 rng(11);
  std::vector<SequenceStep> seqs(n);
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t i = 0; i < 3 + 7 * s; ++i) seqs[s].tokens.push_back((13 * s + 5 * i) % 1000);
    for (int32_t blk = 0; blk < blocks_per_seq; ++blk) seqs[s].block_table.push_back(s * blocks_per_seq + blk);
    seqs[s].lora_slot = s % 4 - 1;
    ForwardBatch fb;
    fb.seqs.push_back(seqs[s]);
    ASSERT_TRUE(m.forward(fb, kv_eager, &slots).is_ok());
    ASSERT_TRUE(m.forward(fb, kv_graph, &slots).is_ok());
    seqs[s].num_cached = static_cast<int32_t>(seqs[s].tokens.size());
    seqs[s].tokens = {(3 * s + 2) % 1000};
  }
  for (int step = 0; step < 12; ++step) {
    if (step == 4) {  // a new adapter of another rank in slot 1, between replays
      slots.clear(1);
      ASSERT_TRUE(slots.load_random(1, 32, 99).is_ok());
    }
    // Every step a new mix: the first 3 or all 13 sequences, each with a random slot or none.
    const int32_t count = step % 2 == 0 ? n : 3;
    ForwardBatch fb;
    for (int32_t s = 0; s < count; ++s) {
      seqs[s].lora_slot = static_cast<int32_t>(rng() % 4) - 1;
      fb.seqs.push_back(seqs[s]);
    }
    fb.seqs[0].lora_slot = 2;  // at least one adapter: the LoRA graph
    // Steps 8-11: every sequence on one adapter (ranks 4, 32 and 64: B held once for all rows, or not), the graph
    // for steps that share one.
    const bool shared = step >= 8;
    if (shared)
      for (SequenceStep& s : fb.seqs) s.lora_slot = step % 3;
    ASSERT_TRUE((*graphs)->eligible(fb, &slots));
    EXPECT_FALSE((*graphs)->eligible(fb));  // adapters need the table
    auto eager = m.forward(fb, kv_eager, &slots);
    ASSERT_TRUE(eager.is_ok()) << eager.status().to_string();
    auto packed = pack_batch(fb, bs, kv_graph.num_blocks(), m.config().vocab_size, slots.num_slots(),
                             (*graphs)->layout_for(count));
    ASSERT_TRUE(packed.is_ok()) << packed.status().to_string();
    EXPECT_EQ(packed->meta.lora_shared, shared) << "step " << step;
    auto logits = (*graphs)->run(packed.value(), &slots);
    ASSERT_TRUE(logits.is_ok()) << logits.status().to_string();
    const std::vector<float> graph = download(b, logits->row_slice(0, count));
    const double err = rel_error(graph, eager.value());
    EXPECT_LT(err, 2e-2) << "step " << step;
    std::printf("decode graph with adapters, %2d sequences, step %d: rel error vs eager %.2e\n", count, step, err);
    for (int32_t s = 0; s < count; ++s) {
      const float* row = eager.value().data() + s * 1000;
      seqs[s].num_cached += 1;
      seqs[s].tokens = {static_cast<int32_t>(std::max_element(row, row + 1000) - row)};
    }
  }
  // A slot that holds no adapter is not eligible.
  ForwardBatch empty_slot;
  empty_slot.seqs.push_back(seqs[0]);
  empty_slot.seqs[0].lora_slot = 3;
  EXPECT_FALSE((*graphs)->eligible(empty_slot, &slots));
}

TEST(DecodeGraphs, CpuBackendHasNone) {
  auto cpu = make_cpu_backend(1);
  LoadOptions load;
  load.dummy_weights = true;
  auto model = Transformer::load(write_model_dir(), *cpu, load);
  ASSERT_TRUE(model.is_ok());
  KvCache kv = KvCache::create(*cpu, (*model)->config(), 4, 16).value();
  auto graphs = DecodeGraphs::create(**model, kv);
  EXPECT_FALSE(graphs.is_ok());
}

}  // namespace
}  // namespace ls::testing
