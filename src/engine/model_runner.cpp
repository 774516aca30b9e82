// model_runner.cpp: one step of the engine on the backend: pack, forward (eager or graph), penalties,
// sampling and log-probabilities on the device, results back to the host in one copy per output.
#include "engine/model_runner.h"

#include <algorithm>

namespace ls {

Result<KvPoolPlan> plan_kv_pool(const ModelConfig& config, Backend& backend, int32_t block_size, int64_t bytes,
                                double gpu_memory_utilization, int64_t activation_reserve) {
  if (block_size <= 0 || block_size > 1024) return invalid_argument("block size must be in [1, 1024]");
  const auto per_block = static_cast<int64_t>(KvCache::bytes_per_block(config, block_size, backend.compute_dtype()));
  KvPoolPlan plan;
  plan.block_size = block_size;
  if (bytes <= 0) {
    const Backend::MemoryInfo mem = backend.memory_info();
    if (backend.name() == "cpu") {
      bytes = std::min<int64_t>(static_cast<int64_t>(mem.total / 4), int64_t{4} << 30);
    } else {
      if (!(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0))
        return invalid_argument("gpu memory utilization must be in (0, 1]");
      const auto used = static_cast<int64_t>(mem.total - mem.free);
      bytes = static_cast<int64_t>(gpu_memory_utilization * static_cast<double>(mem.total)) - used - activation_reserve;
    }
  }
  const int64_t blocks = bytes / per_block;
  if (blocks < 1)
    return resource_exhausted("no memory left for the KV cache (" + std::to_string(bytes) + " bytes; one block of " +
                              std::to_string(block_size) + " tokens takes " + std::to_string(per_block) + ")");
  plan.num_blocks = static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX / block_size));
  plan.bytes = plan.num_blocks * per_block;
  return plan;
}

Result<std::unique_ptr<ModelRunner>> ModelRunner::create(Transformer& model, const KvPoolPlan& plan,
                                                         const RunnerOptions& options) {
  LS_ASSIGN_OR_RETURN(KvCache kv, KvCache::create(model.backend(), model.config(), plan.num_blocks, plan.block_size));
  std::unique_ptr<ModelRunner> r(new ModelRunner(model, std::move(kv)));
  if (options.graphs && model.backend().supports_graphs()) {
    DecodeGraphOptions g;
    for (int32_t b : {1, 2, 4, 8, 16})
      if (b <= options.max_graph_batch) g.buckets.push_back(b);
    for (int32_t b = 24; b <= std::min(options.max_graph_batch, 256); b += 8) g.buckets.push_back(b);
    if (g.buckets.empty()) g.buckets.push_back(1);
    g.max_context = options.max_context;
    LS_ASSIGN_OR_RETURN(r->graphs_, DecodeGraphs::create(model, r->kv_, g));
  }
  return r;
}

Status ModelRunner::capture_graphs() { return graphs_ ? graphs_->capture() : Status::ok(); }

Status ModelRunner::reserve(int64_t rows, int32_t top_n) {
  Backend& b = model_->backend();
  if (rows > row_capacity_) {
    const int64_t n = std::max<int64_t>(rows, 2 * row_capacity_);
    LS_ASSIGN_OR_RETURN(tokens_, b.allocate(static_cast<size_t>(n) * sizeof(int32_t)));
    LS_ASSIGN_OR_RETURN(targets_, b.allocate(static_cast<size_t>(n) * sizeof(int32_t)));
    LS_ASSIGN_OR_RETURN(logprob_, b.allocate(static_cast<size_t>(n) * sizeof(float)));
    row_capacity_ = n;
    top_capacity_ = 0;  // the alternatives' buffers are sized by rows too
  }
  if (top_n > top_capacity_) {
    const auto n = static_cast<size_t>(row_capacity_) * static_cast<size_t>(kMaxTopLogprobs);
    LS_ASSIGN_OR_RETURN(top_ids_, b.allocate(n * sizeof(int32_t)));
    LS_ASSIGN_OR_RETURN(top_logprobs_, b.allocate(n * sizeof(float)));
    top_capacity_ = kMaxTopLogprobs;
  }
  return Status::ok();
}

namespace {

// The logits row a sequence samples from (its last row), or -1.
int32_t sampled_row(const RunnerSeq& s, const PackedBatch& p, size_t i, bool padded) {
  if (!s.sample) return -1;
  if (padded) return static_cast<int32_t>(i);
  const int32_t end = p.seq_logit_begin[i + 1];
  return end > p.seq_logit_begin[i] ? end - 1 : -1;
}

// Copies n values of logprob outputs for `rows` rows down and unpacks them per row.
struct HostLogprobs {
  std::vector<float> logprob, top_lp;
  std::vector<int32_t> top_ids;
  int32_t top_n = 0;
  TokenLogprob row(int32_t r, int32_t token, int32_t n) const {
    TokenLogprob t;
    t.token = token;
    t.logprob = logprob[r];
    for (int32_t i = 0; i < n && i < top_n; ++i)
      if (top_ids[r * top_n + i] >= 0) t.top.emplace_back(top_ids[r * top_n + i], top_lp[r * top_n + i]);
    return t;
  }
};

}  // namespace

void ModelRunner::sample(Tensor logits, const std::vector<RunnerSeq>& seqs, const PackedBatch& packed, bool padded) {
  Backend& b = model_->backend();
  const auto rows = static_cast<size_t>(logits.rows);
  params_.assign(rows, SamplingParams{});  // rows nobody samples from: greedy, cheap
  penalties_.assign(rows, PenaltyParams{});
  count_start_.assign(rows + 1, 0);
  count_token_.clear();
  count_value_.clear();
  bool any_penalty = false;
  std::vector<int32_t> row_of(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    row_of[i] = sampled_row(seqs[i], packed, i, padded);
    if (row_of[i] < 0) continue;
    params_[row_of[i]] = seqs[i].sampling;
    if (seqs[i].penalties.active() && seqs[i].history) {
      penalties_[row_of[i]] = seqs[i].penalties;
      any_penalty = true;
    }
  }
  if (any_penalty) {
    std::vector<int32_t> seq_at_row(rows, -1);
    for (size_t i = 0; i < seqs.size(); ++i)
      if (row_of[i] >= 0) seq_at_row[row_of[i]] = static_cast<int32_t>(i);
    for (size_t r = 0; r < rows; ++r) {
      count_start_[r] = static_cast<int32_t>(count_token_.size());
      if (seq_at_row[r] < 0 || !penalties_[r].active()) continue;
      for (const auto& [token, count] : *seqs[seq_at_row[r]].history) {
        count_token_.push_back(token);
        count_value_.push_back(count);
      }
    }
    count_start_[rows] = static_cast<int32_t>(count_token_.size());
    TokenCounts counts{static_cast<int32_t>(rows), count_start_.data(), count_token_.data(), count_value_.data(),
                       penalties_.data()};
    b.apply_penalties(logits, counts);
  }
  b.sample(logits, params_.data(), static_cast<int32_t*>(tokens_.data()));
}

Status ModelRunner::prompt_logprobs(Tensor logits, const std::vector<RunnerSeq>& seqs, const PackedBatch& packed,
                                    int32_t top_n) {
  Backend& b = model_->backend();
  const auto rows = static_cast<size_t>(logits.rows);
  std::vector<int32_t> target(rows, -1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const RunnerSeq& s = seqs[i];
    if (s.prompt_logprobs < 0 || s.prompt_targets.empty()) continue;
    const int32_t begin = packed.seq_logit_begin[i], end = packed.seq_logit_begin[i + 1];
    for (int32_t r = begin; r < end && r - begin < static_cast<int32_t>(s.prompt_targets.size()); ++r)
      target[r] = s.prompt_targets[r - begin];
  }
  b.copy_to_device(targets_.data(), target.data(), rows * sizeof(int32_t));
  b.logprobs(logits, static_cast<const int32_t*>(targets_.data()), top_n, static_cast<float*>(logprob_.data()),
             static_cast<int32_t*>(top_ids_.data()), static_cast<float*>(top_logprobs_.data()));
  HostLogprobs host;
  host.top_n = top_n;
  host.logprob.resize(rows);
  host.top_ids.resize(rows * top_n);
  host.top_lp.resize(rows * top_n);
  b.copy_to_host(host.logprob.data(), logprob_.data(), rows * sizeof(float));
  if (top_n > 0) {
    b.copy_to_host(host.top_ids.data(), top_ids_.data(), host.top_ids.size() * sizeof(int32_t));
    b.copy_to_host(host.top_lp.data(), top_logprobs_.data(), host.top_lp.size() * sizeof(float));
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int32_t begin = packed.seq_logit_begin[i], end = packed.seq_logit_begin[i + 1];
    for (int32_t r = begin; r < end; ++r)
      if (target[r] >= 0) results_[i].prompt.push_back(host.row(r, target[r], seqs[i].prompt_logprobs));
  }
  return Status::ok();
}

Status ModelRunner::launch(std::vector<RunnerSeq>& seqs, const LoraTable* lora) {
  LS_CHECK(!in_flight_) << "model runner: launch with a step in flight";
  if (seqs.empty()) return invalid_argument("empty step");
  const ModelConfig& c = model_->config();
  ForwardBatch batch;
  batch.seqs.reserve(seqs.size());
  for (RunnerSeq& s : seqs) batch.seqs.push_back(std::move(s.step));
  const bool padded = graphs_ && graphs_->eligible(batch, lora);
  PackedBatch packed;
  Tensor logits;
  if (padded) {
    const int32_t slots = lora ? lora->num_slots() : 0;
    LS_ASSIGN_OR_RETURN(packed, pack_batch(batch, kv_.block_size(), kv_.num_blocks(), c.vocab_size, slots,
                                           graphs_->layout_for(static_cast<int64_t>(seqs.size()))));
    LS_ASSIGN_OR_RETURN(logits, graphs_->run(packed, lora));
  } else {
    LS_ASSIGN_OR_RETURN(logits, model_->forward_device(batch, kv_, lora, &packed));
  }
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i].step = std::move(batch.seqs[i]);

  int32_t top_n = 0, prompt_top_n = 0;
  bool any_sample = false, any_logprobs = false, any_prompt = false;
  for (const RunnerSeq& s : seqs) {
    any_sample |= s.sample;
    if (s.sample && s.logprobs >= 0) {
      any_logprobs = true;
      top_n = std::max(top_n, s.logprobs);
    }
    if (s.prompt_logprobs >= 0 && !s.prompt_targets.empty()) {
      any_prompt = true;
      prompt_top_n = std::max(prompt_top_n, s.prompt_logprobs);
    }
  }
  results_.assign(seqs.size(), RunnerResult{});
  sampled_row_.assign(seqs.size(), -1);
  seq_logprobs_.assign(seqs.size(), -1);
  rows_ = 0;
  any_logprobs_ = false;
  if (logits.rows > 0 && (any_sample || any_prompt)) {
    top_n = std::min(top_n, kMaxTopLogprobs);
    prompt_top_n = std::min(prompt_top_n, kMaxTopLogprobs);
    LS_RETURN_IF_ERROR(reserve(logits.rows, std::max(top_n, prompt_top_n)));
    // Prompt log-probabilities come from the raw logits, before penalties touch them.
    if (any_prompt) LS_RETURN_IF_ERROR(prompt_logprobs(logits, seqs, packed, prompt_top_n));
    sample(logits, seqs, packed, padded);
    if (any_logprobs) {
      model_->backend().logprobs(logits, static_cast<const int32_t*>(tokens_.data()), top_n,
                                 static_cast<float*>(logprob_.data()), static_cast<int32_t*>(top_ids_.data()),
                                 static_cast<float*>(top_logprobs_.data()));
    }
    rows_ = logits.rows;
    top_n_ = top_n;
    any_logprobs_ = any_logprobs;
    for (size_t i = 0; i < seqs.size(); ++i) {
      sampled_row_[i] = sampled_row(seqs[i], packed, i, padded);
      seq_logprobs_[i] = seqs[i].logprobs;
    }
  }
  done_fence_ = model_->backend().ops_fence();
  in_flight_ = true;
  return Status::ok();
}

bool ModelRunner::step_done() const {
  LS_CHECK(in_flight_) << "model runner: step_done without a step in flight";
  return model_->backend().ops_done(done_fence_);
}

Result<std::vector<RunnerResult>> ModelRunner::collect() {
  LS_CHECK(in_flight_) << "model runner: collect without a step in flight";
  in_flight_ = false;
  Backend& b = model_->backend();
  std::vector<RunnerResult> results = std::move(results_);
  if (rows_ == 0) {
    b.synchronize();
    return results;
  }
  const auto rows = static_cast<size_t>(rows_);
  std::vector<int32_t> tokens(rows);
  b.copy_to_host(tokens.data(), tokens_.data(), rows * sizeof(int32_t));
  HostLogprobs sampled;
  if (any_logprobs_) {
    sampled.top_n = top_n_;
    sampled.logprob.resize(rows);
    sampled.top_ids.resize(rows * top_n_);
    sampled.top_lp.resize(rows * top_n_);
    b.copy_to_host(sampled.logprob.data(), logprob_.data(), rows * sizeof(float));
    if (top_n_ > 0) {
      b.copy_to_host(sampled.top_ids.data(), top_ids_.data(), sampled.top_ids.size() * sizeof(int32_t));
      b.copy_to_host(sampled.top_lp.data(), top_logprobs_.data(), sampled.top_lp.size() * sizeof(float));
    }
  }
  for (size_t i = 0; i < results.size(); ++i) {
    const int32_t r = sampled_row_[i];
    if (r < 0) continue;
    if (seq_logprobs_[i] >= 0) {
      results[i].sampled = sampled.row(r, tokens[r], seq_logprobs_[i]);
    } else {
      results[i].sampled.token = tokens[r];
    }
  }
  return results;
}

Result<std::vector<RunnerResult>> ModelRunner::step(std::vector<RunnerSeq>& seqs, const LoraTable* lora) {
  LS_RETURN_IF_ERROR(launch(seqs, lora));
  return collect();
}

}  // namespace ls
