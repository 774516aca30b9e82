// cuda_attention_test.cpp: RoPE, the KV write (alone and fused with RoPE) and paged attention of the CUDA
// backend against the CPU twins: decode batches (1, 7, 99 sequences; contexts 1, 17 and over 1000), prefill
// chunks on cached context, mixed batches, sliding windows, head dims 64 and 128 (the tensor-core and split-K
// paths) and 8, 16, 32 (the generic path), GQA ratios 1, 2, 4 and 8, odd block sizes and scattered blocks,
// and the decode path with a capacity max_context_len larger than any real context (as CUDA graphs run it).
// The decode cases run on both decode kernels (tensor-core and CUDA-core).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cuda_test_fixture.h"

namespace ls::testing {
namespace {

using CudaAttention = CudaOpTest;
constexpr double kBf16Tol = 1e-2;

struct Shape {
  int64_t heads, kv_heads, head_dim;
  int32_t block_size;
  int64_t window = 0;
};

// A cache with random contents in both backends, its blocks handed out in shuffled order.
struct Cache : CacheTwin {
  std::vector<int32_t> free_blocks;
};

Cache make_cache(BackendPair& p, std::mt19937& rng, const Shape& s, int32_t num_blocks) {
  Cache c;
  static_cast<CacheTwin&>(c) = make_cache_twin(p, rng, s.kv_heads, s.head_dim, s.block_size, num_blocks);
  c.free_blocks.resize(num_blocks);
  std::iota(c.free_blocks.begin(), c.free_blocks.end(), 0);
  std::shuffle(c.free_blocks.begin(), c.free_blocks.end(), rng);
  return c;
}

// Sequences given as (cached, new tokens).
ForwardBatch make_batch(Cache& cache, const Shape& s, const std::vector<std::pair<int32_t, int32_t>>& seqs) {
  ForwardBatch fb;
  for (auto [cached, n] : seqs) {
    SequenceStep st;
    st.num_cached = cached;
    st.tokens.assign(n, 1);
    const int32_t blocks = (cached + n + s.block_size - 1) / s.block_size;
    for (int32_t b = 0; b < blocks; ++b) {
      st.block_table.push_back(cache.free_blocks.back());
      cache.free_blocks.pop_back();
    }
    fb.seqs.push_back(st);
  }
  return fb;
}

int32_t blocks_needed(const Shape& s, const std::vector<std::pair<int32_t, int32_t>>& seqs) {
  int32_t n = 0;
  for (auto [c, t] : seqs) n += (c + t + s.block_size - 1) / s.block_size;
  return n + 3;
}

void check_attention(CudaAttention* test, const Shape& s, const std::vector<std::pair<int32_t, int32_t>>& seqs,
                     int32_t capacity = 0) {
  BackendPair& p = test->p_;
  std::mt19937& rng = test->rng_;
  Cache cache = make_cache(p, rng, s, blocks_needed(s, seqs));
  const ForwardBatch fb = make_batch(cache, s, seqs);
  auto packed = pack_batch(fb, s.block_size, static_cast<int32_t>(cache.cpu.num_blocks), 10, 0);
  ASSERT_TRUE(packed.is_ok()) << packed.status().to_string();
  BatchMeta host = packed->meta;
  BatchMeta gpu_host = host;
  if (capacity > host.max_context_len) gpu_host.max_context_len = capacity;
  const BatchMeta gpu = p.gpu->upload_batch(gpu_host);
  const int64_t T = host.num_tokens, qw = s.heads * s.head_dim;
  // q is a column slice of a wider qkv-like row, as in the forward pass.
  Twin q = make_twin(p, T, qw, rng, -2, 2, qw + 2 * s.kv_heads * s.head_dim, 0);
  Twin out = make_twin(p, T, qw, rng);
  poison(*p.gpu, out.gpu);
  AttentionParams params;
  params.num_heads = s.heads;
  params.scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  params.sliding_window = s.window;
  p.cpu->attention(host, q.cpu, cache.cpu, params, out.cpu);
  p.gpu->attention(gpu, q.gpu, cache.gpu, params, out.gpu);
  std::string desc = "heads " + std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + " d " +
                     std::to_string(s.head_dim) + " bs " + std::to_string(s.block_size) + " window " +
                     std::to_string(s.window) + " capacity " + std::to_string(capacity) + " seqs";
  for (auto [c, n] : seqs) desc += " (" + std::to_string(c) + "+" + std::to_string(n) + ")";
  const double err = rel_error(download(*p.gpu, out.gpu), download(*p.cpu, out.cpu));
  EXPECT_LT(err, kBf16Tol) << desc;
  std::printf("attention %-60.60s err %.2e\n", desc.c_str(), err);
}

std::vector<std::pair<int32_t, int32_t>> decode_seqs(std::mt19937& rng, int n, std::vector<int32_t> contexts) {
  std::vector<std::pair<int32_t, int32_t>> seqs;
  for (int i = 0; i < n; ++i) seqs.push_back({contexts[i % contexts.size()] - 1, 1});
  std::shuffle(seqs.begin(), seqs.end(), rng);
  return seqs;
}

using DecodeAttention = CudaBackendOptions::DecodeAttention;
const char* kernel_name(DecodeAttention k) { return k == DecodeAttention::kSimt ? "simt" : "tensor-core"; }

TEST_F(CudaAttention, DecodeFastPath) {
  SCOPED_TRACE(trace());
  for (DecodeAttention k : {DecodeAttention::kTensorCore, DecodeAttention::kSimt}) {
    set_cuda_options([k](CudaBackendOptions& o) { o.decode_attention = k; });
    SCOPED_TRACE(kernel_name(k));
    for (int64_t d : {64, 128}) {
      for (int64_t group : {1, 2, 4, 8}) {
        const Shape s{8 * group / (group == 1 ? 4 : 1), 8 / (group == 1 ? 4 : 1), d, 16};
        check_attention(this, s, decode_seqs(rng_, 1, {1}));
        check_attention(this, s, decode_seqs(rng_, 1, {1030}));
        check_attention(this, s, decode_seqs(rng_, 7, {1, 17, 1030, 64, 65, 200, 3}));
        check_attention(this, s, decode_seqs(rng_, 99, {17, 1, 1024, 300, 33}));
        check_attention(this, s, decode_seqs(rng_, 7, {1, 17, 1030, 64, 65, 200, 3}), 4096);  // graph capacity
      }
    }
  }
}

TEST_F(CudaAttention, DecodeOddBlocksAndWindows) {
  SCOPED_TRACE(trace());
  for (DecodeAttention k : {DecodeAttention::kTensorCore, DecodeAttention::kSimt}) {
    set_cuda_options([k](CudaBackendOptions& o) { o.decode_attention = k; });
    SCOPED_TRACE(kernel_name(k));
    check_attention(this, {8, 2, 128, 5}, decode_seqs(rng_, 7, {1, 17, 1030, 6, 5}));
    check_attention(this, {8, 2, 128, 16, 8}, decode_seqs(rng_, 7, {1, 17, 1030, 6, 5}));
    check_attention(this, {8, 2, 64, 16, 300}, decode_seqs(rng_, 7, {1, 17, 1030, 301, 299}), 2048);
    check_attention(this, {8, 2, 128, 32}, decode_seqs(rng_, 7, {1, 33, 1030, 31, 64}));         // 2 tiles a page
    check_attention(this, {16, 2, 64, 32, 100}, decode_seqs(rng_, 7, {1, 33, 1030, 131, 99}));  // window
    check_attention(this, {8, 1, 128, 24}, decode_seqs(rng_, 7, {1, 25, 1030, 47, 48}), 3000);  // 24: not pow2
    check_attention(this, {8, 8, 64, 48}, decode_seqs(rng_, 3, {2000, 49, 97}));  // 48: pages of 3 tiles
  }
}

TEST_F(CudaAttention, PrefillFastPath) {
  SCOPED_TRACE(trace());
  for (int64_t d : {64, 128}) {
    for (int64_t group : {1, 4, 8}) {
      const Shape s{8 * group / (group == 1 ? 4 : 1), 8 / (group == 1 ? 4 : 1), d, 16};
      check_attention(this, s, {{0, 99}});
      check_attention(this, s, {{17, 7}});
      check_attention(this, s, {{0, 1}, {1000, 99}, {5, 64}, {0, 130}});
      check_attention(this, s, {{0, 1030}});
    }
  }
  check_attention(this, {8, 2, 128, 7}, {{3, 99}, {0, 65}});            // odd block size
  check_attention(this, {8, 2, 128, 16, 8}, {{0, 99}, {40, 30}});       // sliding window
  check_attention(this, {8, 2, 64, 16, 100}, {{0, 300}, {1000, 77}});
  check_attention(this, {8, 2, 128, 16}, {{5, 1}, {0, 1}, {1000, 1}, {3, 2}});  // decode-like tokens, prefill path
}

TEST_F(CudaAttention, GenericPath) {
  SCOPED_TRACE(trace());
  for (int64_t d : {8, 16, 32}) {
    check_attention(this, {4, 2, d, 16}, {{0, 7}, {3, 1}});
    check_attention(this, {4, 1, d, 4}, decode_seqs(rng_, 7, {1, 17, 100}));
    check_attention(this, {8, 2, d, 16, 8}, {{0, 40}, {20, 1}});
  }
  check_attention(this, {3, 1, 32, 16}, {{0, 50}});                     // group 3
  check_attention(this, {12, 2, 128, 16}, decode_seqs(rng_, 7, {1, 1030}));  // group 6
}

struct RopeCase {
  int64_t heads, kv_heads, head_dim;
};

TEST_F(CudaAttention, RopeAndKvWrite) {
  SCOPED_TRACE(trace());
  for (RopeCase rc : std::vector<RopeCase>{{8, 2, 128}, {4, 4, 64}, {4, 1, 16}, {8, 2, 8}}) {
    for (int32_t t : {1, 7, 99}) {
      const Shape s{rc.heads, rc.kv_heads, rc.head_dim, 16};
      Cache cache = make_cache(p_, rng_, s, (5000 + t) / 16 + 20);
      const int32_t cached = static_cast<int32_t>(rng_() % 4000);
      const ForwardBatch fb = make_batch(cache, s, {{cached, t}});
      Meta m = meta(fb, 16, static_cast<int32_t>(cache.cpu.num_blocks), 10);
      const int64_t q = rc.heads * rc.head_dim, kv = rc.kv_heads * rc.head_dim;
      Twin qkv = make_twin(p_, t, q + 2 * kv, rng_, -2, 2);
      std::vector<float> inv(rc.head_dim / 2);
      for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(10000.0f, -2.0f * i / rc.head_dim);
      Buffer inv_c = p_.cpu->allocate(inv.size() * 4).value(), inv_g = p_.gpu->allocate(inv.size() * 4).value();
      p_.cpu->copy_to_device(inv_c.data(), inv.data(), inv.size() * 4);
      p_.gpu->copy_to_device(inv_g.data(), inv.data(), inv.size() * 4);
      for (bool fused : {false, true}) {
        Twin x = make_twin(p_, t, q + 2 * kv, rng_);
        set_twin(p_, x, qkv.host);
        auto slices = [&](const Tensor& all) {
          return std::array<Tensor, 3>{all.col_slice(0, q), all.col_slice(q, kv), all.col_slice(q + kv, kv)};
        };
        auto c = slices(x.cpu), g = slices(x.gpu);
        const auto* fc = static_cast<const float*>(inv_c.data());
        const auto* fg = static_cast<const float*>(inv_g.data());
        if (fused) {
          p_.cpu->rope_kv_write(m.packed.meta, c[0], c[1], c[2], fc, rc.head_dim, cache.cpu);
          p_.gpu->rope_kv_write(m.gpu, g[0], g[1], g[2], fg, rc.head_dim, cache.gpu);
        } else {
          p_.cpu->rope(m.packed.meta, c[0], c[1], fc, rc.head_dim);
          p_.gpu->rope(m.gpu, g[0], g[1], fg, rc.head_dim);
          p_.cpu->kv_write(m.packed.meta, c[1], c[2], cache.cpu);
          p_.gpu->kv_write(m.gpu, g[1], g[2], cache.gpu);
        }
        const std::string desc = std::string(fused ? "fused" : "rope, kv_write") + " tokens " + std::to_string(t) +
                                 " d " + std::to_string(rc.head_dim) + " cached " + std::to_string(cached);
        EXPECT_LT(rel_error(download(*p_.gpu, x.gpu), download(*p_.cpu, x.cpu)), kBf16Tol) << desc;
        EXPECT_LT(rel_error(download(*p_.gpu, cache.k.gpu), download(*p_.cpu, cache.k.cpu)), kBf16Tol) << desc;
        EXPECT_EQ(download(*p_.gpu, cache.v.gpu), download(*p_.cpu, cache.v.cpu)) << desc;
      }
    }
  }
}

}  // namespace
}  // namespace ls::testing
