// cpu_attention.cpp: paged causal attention (GQA, optional sliding window) over the KV cache for every query
// token of a batch, prefill chunks and decode tokens alike: a query at position p attends to cached positions
// [max(0, p - window + 1), p] of its own sequence.
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace ls {
namespace {

struct AttentionJob {
  int32_t seq;
  int32_t token;
};

// Attention of one query token (all heads) over its sequence's cache.
void attend_token(const BatchMeta& batch, const AttentionJob& job, const Tensor& q, const KvLayer& cache,
                  const AttentionParams& params, Tensor& out, std::vector<float>& scores) {
  const int64_t hd = cache.head_dim, width = cache.num_kv_heads * hd;
  const int64_t group = params.num_heads / cache.num_kv_heads;
  const int32_t pos = batch.positions[job.token];
  LS_CHECK(pos < batch.context_lens[job.seq]) << "query position beyond its sequence's cached context";
  const int64_t first = params.sliding_window > 0 ? std::max<int64_t>(0, pos - params.sliding_window + 1) : 0;
  const int32_t* table = batch.block_tables + static_cast<int64_t>(job.seq) * batch.max_blocks_per_seq;
  auto cache_row = [&](const void* base, int64_t p) {
    const int64_t block = table[p / cache.block_size];
    return static_cast<const float*>(base) + (block * cache.block_size + p % cache.block_size) * width;
  };
  scores.resize(static_cast<size_t>(pos - first + 1));
  for (int64_t h = 0; h < params.num_heads; ++h) {
    const float* qh = q.ptr<float>() + job.token * q.ld + h * hd;
    const int64_t kv_head = h / group;
    float max_score = -std::numeric_limits<float>::infinity();
    for (int64_t p = first; p <= pos; ++p) {
      const float* kh = cache_row(cache.k, p) + kv_head * hd;
      float dot = 0;
      for (int64_t i = 0; i < hd; ++i) dot += qh[i] * kh[i];
      scores[p - first] = dot * params.scale;
      max_score = std::max(max_score, scores[p - first]);
    }
    double denom = 0;
    for (float& s : scores) {
      s = std::exp(s - max_score);
      denom += s;
    }
    float* oh = out.ptr<float>() + job.token * out.ld + h * hd;
    for (int64_t i = 0; i < hd; ++i) oh[i] = 0;
    for (int64_t p = first; p <= pos; ++p) {
      const float w = static_cast<float>(scores[p - first] / denom);
      const float* vh = cache_row(cache.v, p) + kv_head * hd;
      for (int64_t i = 0; i < hd; ++i) oh[i] += w * vh[i];
    }
  }
}

}  // namespace

void CpuBackend::attention(const BatchMeta& batch, Tensor q, const KvLayer& cache, const AttentionParams& params,
                           Tensor out) {
  LS_CHECK(params.num_heads % cache.num_kv_heads == 0) << "heads not a multiple of kv heads";
  LS_CHECK(q.cols == params.num_heads * cache.head_dim && out.cols == q.cols) << "attention shape mismatch";
  std::vector<AttentionJob> jobs;
  jobs.reserve(batch.num_tokens);
  for (int32_t s = 0; s < batch.num_seqs; ++s)
    for (int32_t t = batch.query_start[s]; t < batch.query_start[s + 1]; ++t) jobs.push_back({s, t});
#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for schedule(dynamic, 1)
    for (size_t j = 0; j < jobs.size(); ++j) attend_token(batch, jobs[j], q, cache, params, out, scores);
  }
}

}  // namespace ls
