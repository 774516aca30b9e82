// cpu_attention.cpp: paged causal attention (GQA, optional sliding window) over the KV cache for every query
// token of a batch, prefill chunks and decode tokens alike: a query at position p attends to cached positions
// [max(0, p - window + 1), p] of its own sequence. One job is one (token, KV head) pair: the query heads of
// the group share each K and V row read. A job's arithmetic depends only on its token's query and context
// (cpu_kernels.h orders): scores q.k by dot_rows, exp(scale * score - scale * max) and the lane-summed
// denominator by softmax_exp, the value sum by accumulate_rows in position order, then / denominator. Jobs go
// to threads in small chunks from a shared counter, so long prefill rows and short decode rows balance.
#include <algorithm>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace ls {
namespace {

struct AttentionJob {
  int32_t seq;
  int32_t token;
};

struct AttentionCall {
  const BatchMeta& batch;
  const Tensor& q;
  const KvLayer& cache;
  const AttentionParams& params;
  Tensor& out;
  const cpu::CpuKernels& kernels;
};

// Attention of one query token's heads of one KV head group; scores: scratch.
void attend(const AttentionCall& c, const AttentionJob& job, int64_t kv_head, std::vector<float>& scores) {
  const KvLayer& cache = c.cache;
  const int64_t hd = cache.head_dim, width = cache.num_kv_heads * hd, bs = cache.block_size;
  const int64_t group = c.params.num_heads / cache.num_kv_heads;
  const int32_t pos = c.batch.positions[job.token];
  LS_CHECK(pos < c.batch.context_lens[job.seq]) << "query position beyond its sequence's cached context";
  const int64_t first = c.params.sliding_window > 0 ? std::max<int64_t>(0, pos - c.params.sliding_window + 1) : 0;
  const int64_t len = pos - first + 1;
  const int32_t* table = c.batch.block_tables + static_cast<int64_t>(job.seq) * c.batch.max_blocks_per_seq;
  const float* qg = c.q.ptr<float>() + job.token * c.q.ld + kv_head * group * hd;
  float* og = c.out.ptr<float>() + job.token * c.out.ld + kv_head * group * hd;
  scores.resize(static_cast<size_t>(group * len + group));  // scores, then the denominators

  // Runs fn(first position, rows, K or V row pointer of the first) over the context, block run by block run.
  auto for_runs = [&](const void* base, auto&& fn) {
    for (int64_t p = first; p <= pos;) {
      const int64_t rows = std::min<int64_t>(bs - p % bs, pos - p + 1);
      const float* row = static_cast<const float*>(base) + (table[p / bs] * bs + p % bs) * width + kv_head * hd;
      fn(p, rows, row);
      p += rows;
    }
  };
  for_runs(cache.k, [&](int64_t p, int64_t rows, const float* k) {
    c.kernels.dot_rows(qg, hd, group, k, width, rows, hd, scores.data() + (p - first), len, false);
  });
  for (int64_t h = 0; h < group; ++h) {
    scores[group * len + h] = c.kernels.softmax_exp(scores.data() + h * len, len, c.params.scale);
    std::fill(og + h * hd, og + (h + 1) * hd, 0.0f);
  }
  for_runs(cache.v, [&](int64_t p, int64_t rows, const float* v) {
    c.kernels.accumulate_rows(scores.data() + (p - first), len, group, v, width, rows, hd, og, hd);
  });
  for (int64_t h = 0; h < group; ++h) {
    const float denominator = scores[group * len + h];
    for (int64_t i = 0; i < hd; ++i) og[h * hd + i] = og[h * hd + i] / denominator;
  }
}

}  // namespace

void CpuBackend::attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                           Tensor out) {
  LS_CHECK(params.num_heads % cache.num_kv_heads == 0) << "heads not a multiple of kv heads";
  LS_CHECK(q.cols == params.num_heads * cache.head_dim && out.cols == q.cols) << "attention shape mismatch";
  LS_CHECK(q.dtype == DType::kF32 && out.dtype == DType::kF32) << "cpu backend: attention in float32";
  std::vector<AttentionJob> jobs;
  jobs.reserve(static_cast<size_t>(batch.num_tokens));
  for (int32_t s = 0; s < batch.num_seqs; ++s)
    for (int32_t t = batch.query_start[s]; t < batch.query_start[s + 1]; ++t) jobs.push_back({s, t});
  const int64_t groups = cache.num_kv_heads, total = static_cast<int64_t>(jobs.size()) * groups;
  const AttentionCall call{batch, q, cache, params, out, *kernels_};
  pool_.parallel_for(total, std::max<int64_t>(1, total / (8 * pool_.size())), [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t j = begin; j < end; ++j) attend(call, jobs[j / groups], j % groups, scores);
  });
}

}  // namespace ls
