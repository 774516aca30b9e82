// engine.cpp: the engine thread: inbox, scheduling, the step, per-request output, metrics. See engine.h.
#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include <sys/prctl.h>

#include "engine/adapter_slots.h"
#include "engine/model_runner.h"
#include "engine/scheduler.h"

namespace ls {
namespace {

// While a step is in flight the engine thread looks at it (and at the inbox) this often: an arrival wakes it at
// once, the step's end is seen within about this (see Engine::Impl::beside_step).
constexpr auto kStepPoll = std::chrono::microseconds(50);

const char* metric_reason(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
    default: return "stop";
  }
}

Status validate_params(const GenerationParams& p, int64_t vocab) {
  const SamplingParams& s = p.sampling;
  if (!std::isfinite(s.temperature) || s.temperature < 0) return invalid_argument("temperature must be >= 0");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return invalid_argument("top_p must be in (0, 1]");
  if (!(s.min_p >= 0.0f && s.min_p <= 1.0f)) return invalid_argument("min_p must be in [0, 1]");
  if (!(s.typical_p > 0.0f && s.typical_p <= 1.0f)) return invalid_argument("typical_p must be in (0, 1]");
  if (s.top_k < -1) return invalid_argument("top_k must be -1, 0 or positive");
  const PenaltyParams& q = p.penalties;
  if (!(q.repetition > 0.0f) || !std::isfinite(q.repetition)) return invalid_argument("repetition_penalty must be > 0");
  if (!(q.frequency >= -2.0f && q.frequency <= 2.0f)) return invalid_argument("frequency_penalty must be in [-2, 2]");
  if (!(q.presence >= -2.0f && q.presence <= 2.0f)) return invalid_argument("presence_penalty must be in [-2, 2]");
  if (p.logprobs > kMaxTopLogprobs || p.prompt_logprobs > kMaxTopLogprobs)
    return invalid_argument("at most " + std::to_string(kMaxTopLogprobs) + " log-probability alternatives");
  if (p.stop.max_new_tokens < 1) return invalid_argument("max_new_tokens must be >= 1");
  if (p.stop.min_new_tokens < 0) return invalid_argument("min_tokens must be >= 0");
  for (int32_t t : p.stop.stop_token_ids)
    if (t < 0 || t >= vocab) return invalid_argument("stop token id " + std::to_string(t) + " outside the vocabulary");
  return Status::ok();
}

}  // namespace

struct Engine::Impl {
  ServedModel* model = nullptr;
  EngineOptions options;
  EngineLimits limits;
  std::unique_ptr<AdapterCatalog> catalog;
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<AdapterSlots> slots;
  std::unique_ptr<BlockPool> pool;
  std::unique_ptr<Scheduler> scheduler;

  // Inbox, shared with submitting threads.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Sequence>> inbox;
  bool adapter_loaded = false;  // a host load finished (the catalog's loaders) since the engine thread looked
  bool accepting = true, stopping = false, started = false;
  double deadline = 0;
  std::atomic<uint64_t> next_id{1};
  std::atomic<int32_t> waiting_count{0};  // the scheduler's waiting queue, published each step
  std::thread thread;
  std::mt19937_64 seed_rng{std::random_device{}()};

  // Engine thread state.
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> live;

  // Published counters.
  mutable std::mutex stats_mu;
  EngineStats stats;
  struct Usage {
    uint64_t requests = 0;
    double last_used = 0;
  };
  std::map<std::string, Usage> usage;  // by adapter name
  std::vector<uint64_t> resident_keys;
  int32_t free_slots = 0;
  int64_t free_rank_rows = 0;

  Impl(ServedModel& m, const EngineOptions& o) : model(&m), options(o) {}
  ~Impl() { catalog.reset(); }  // joins the loaders before the mutex they notify and the slots they stage for go
  // The adapter catalog, whose loaders stage each adapter for the slots (so slot loads only copy).
  void create_catalog() {
    AdapterCatalogOptions co;
    co.roots = options.adapter_dirs;
    co.max_cpu_loras = options.max_cpu_loras;
    co.max_cpu_bytes = options.max_cpu_lora_bytes;
    co.max_rank = options.max_lora_rank;
    co.remote = options.remote_adapters;
    const LoraSlots* lora = &slots->lora();
    co.stage = [lora](const LoraAdapter& adapter) -> Result<std::shared_ptr<const StagedAdapter>> {
      LS_ASSIGN_OR_RETURN(StagedAdapter staged, lora->stage(adapter));
      return std::make_shared<const StagedAdapter>(std::move(staged));
    };
    catalog = std::make_unique<AdapterCatalog>(model->config(), co, [this] {
      std::lock_guard<std::mutex> lock(mu);
      adapter_loaded = true;
      cv.notify_all();
    });
  }

  // The step the device is computing while the host finishes the previous one.
  struct InFlight {
    uint64_t step = 0;  // numbered from 1 (AdapterSlots::reading)
    std::vector<ScheduledSeq> scheduled;
    bool decode_only = true;
    int64_t tokens = 0;
    double launched = 0;
  };
  // A generated token whose text and stop strings are handled after the next step is launched.
  struct NewToken {
    Sequence* seq;
    TokenInfo info;
    bool prompt_done;  // the prompt's log-probabilities are complete and unsent
  };
  std::optional<InFlight> inflight;
  std::vector<std::unique_ptr<Sequence>> retired;  // finished; kept until no step in flight can name them
  uint64_t steps_launched = 0;
  double last_collect = 0, last_publish = 0;

  void loop();
  // While the step in flight runs on the device: arrivals, adapters that reached host memory and the slot copies
  // they need, then a wait of at most kStepPoll (woken by an arrival or a host load).
  void beside_step();
  // Moves the inbox into the scheduler; whether anything arrived.
  bool drain_inbox();
  // Waiting sequences whose adapter finished loading into host memory become schedulable; failed loads fail them.
  void resolve_claims();
  // Pushes the final update and retires the sequence (its blocks and slot are freed at once).
  void finish(Sequence* seq, FinishReason reason, Status error = Status::ok(), RequestUpdate* update = nullptr);
  Status launch(const SchedulerOutput& out, double now);
  // Collects the step in flight: token ids, counts and the stops that need no text (end-of-sequence, stop
  // ids, length), so the next step can be scheduled; the rest waits in `fresh` for emit().
  void collect(std::vector<NewToken>& fresh);
  void apply(Sequence* seq, int32_t n, RunnerResult& result, double now, std::vector<NewToken>& fresh);
  // Text, stop strings and updates for the tokens collected last.
  void emit(std::vector<NewToken>& fresh);
  void publish(double now);
  RunnerSeq runner_seq(Sequence* seq, int32_t n) const;
  RequestUpdate base_update(const Sequence& seq) const;
};

Result<std::unique_ptr<Engine>> Engine::create(ServedModel& model, const EngineOptions& o) {
  std::unique_ptr<Engine> e(new Engine(model));
  e->impl_ = std::make_unique<Impl>(model, o);
  Impl& im = *e->impl_;
  const ModelConfig& c = model.config();
  if (o.max_num_seqs < 1) return invalid_argument("max_num_seqs must be >= 1");
  if (o.max_loras < 1) return invalid_argument("max_loras must be >= 1");
  EngineLimits& L = e->limits_;
  L.max_num_seqs = o.max_num_seqs;
  L.max_num_batched_tokens = o.max_num_batched_tokens > 0 ? o.max_num_batched_tokens : 2048;
  if (L.max_num_batched_tokens < L.max_num_seqs)
    return invalid_argument("max_num_batched_tokens (" + std::to_string(L.max_num_batched_tokens) +
                            ") must be >= max_num_seqs (" + std::to_string(L.max_num_seqs) + ")");
  L.max_loras = o.max_loras;
  L.block_size = o.block_size;
  // Device LoRA memory: max_loras x max_lora_rank rank rows (vLLM's sizing), or room for the largest rank in
  // every slot when any rank is allowed.
  const int64_t rank_rows = o.max_lora_rank > 0 ? int64_t{o.max_loras} * o.max_lora_rank : 0;
  LS_ASSIGN_OR_RETURN(im.slots, AdapterSlots::create(model.backend(), c, o.max_loras, rank_rows));
  im.create_catalog();
  // Activations of the largest step and its logits (all rows when prompt log-probabilities are asked for),
  // plus backend scratch and graph memory.
  const int64_t T = L.max_num_batched_tokens;
  const int64_t act = T * (4 * c.hidden_size + 2 * c.q_size() + 2 * c.kv_size() + 3 * c.intermediate_size) * 2;
  const int64_t reserve = act + 2 * T * c.vocab_size * 4 + (int64_t{1} << 30);
  LS_ASSIGN_OR_RETURN(KvPoolPlan plan, plan_kv_pool(c, model.backend(), o.block_size, o.kv_cache_bytes,
                                                    o.gpu_memory_utilization, reserve));
  L.num_kv_blocks = plan.num_blocks;
  L.kv_bytes = plan.bytes;
  const int64_t wanted = o.max_model_len > 0 ? o.max_model_len : c.max_position_embeddings;
  if (o.max_model_len > 0 && o.max_model_len > L.kv_tokens())
    return resource_exhausted("max_model_len " + std::to_string(o.max_model_len) + " is larger than the KV cache (" +
                              std::to_string(L.kv_tokens()) + " tokens); lower it or give the cache more memory");
  L.max_model_len = static_cast<int32_t>(std::min<int64_t>({wanted, L.kv_tokens(), INT32_MAX}));
  RunnerOptions ro;
  ro.graphs = o.cuda_graphs;
  ro.max_graph_batch = L.max_num_seqs;
  ro.max_context = std::min<int32_t>(L.max_model_len, 4096);
  LS_ASSIGN_OR_RETURN(im.runner, ModelRunner::create(model.model(), plan, ro));
  im.pool = std::make_unique<BlockPool>(plan.num_blocks, plan.block_size);
  SchedulerLimits sl;
  sl.max_num_seqs = L.max_num_seqs;
  sl.max_num_batched_tokens = L.max_num_batched_tokens;
  im.scheduler = std::make_unique<Scheduler>(sl, *im.pool, im.slots.get());
  im.limits = L;
  im.stats.block_size = L.block_size;
  im.stats.kv_blocks_total = L.num_kv_blocks;
  im.stats.max_loras = L.max_loras;
  im.stats.request_prompt_tokens = Histogram(token_count_buckets(L.max_model_len));
  im.stats.request_generation_tokens = Histogram(token_count_buckets(L.max_model_len));
  return e;
}

Engine::Engine(ServedModel& model) : model_(&model) {}

Engine::~Engine() { shutdown(0); }

Status Engine::add_adapter(const std::string& name, const std::string& source, const std::string& base_model_name,
                           bool replace) {
  if (model_->is_base_name(name)) return invalid_argument("adapter name \"" + name + "\" is the base model's name");
  return impl_->catalog->register_name(name, source, base_model_name, replace);
}

Status Engine::remove_adapter(const std::string& name) { return impl_->catalog->unregister(name); }

bool Engine::has_adapter(const std::string& name) const { return impl_->catalog->known(name); }

EngineCapacity Engine::capacity(int32_t rank) const {
  const Impl& im = *impl_;
  EngineCapacity c;
  c.rank = rank;
  const ModelConfig& m = model_->config();
  // As the host tier counts it: the staged copy, in compute dtype (AdapterCatalog).
  const auto elem = static_cast<int64_t>(dtype_size(model_->backend().compute_dtype()));
  for (int mod = 0; mod < kNumLoraModules; ++mod) {
    const ProjectionShape shape = projection_shape(m, static_cast<LoraModule>(mod));
    c.adapter_bytes += static_cast<int64_t>(rank) * (shape.in_dim + shape.out_dim) * m.num_layers * elem;
  }
  const AdapterCatalogStats cs = im.catalog->stats();
  c.host_bytes_used = cs.host_bytes;
  c.host_bytes_limit = im.options.max_cpu_lora_bytes;
  int64_t free_host = -1;
  if (im.options.max_cpu_lora_bytes > 0 && c.adapter_bytes > 0)
    free_host = std::max<int64_t>(0, (im.options.max_cpu_lora_bytes - cs.host_bytes) / c.adapter_bytes);
  if (im.options.max_cpu_loras > 0) {
    const int64_t by_count = std::max<int64_t>(0, im.options.max_cpu_loras - cs.host_adapters);
    free_host = free_host < 0 ? by_count : std::min(free_host, by_count);
  }
  c.host_adapters_free = free_host;
  std::lock_guard<std::mutex> lock(im.stats_mu);
  c.device_slots = limits_.max_loras;
  c.device_slots_free = im.free_slots;
  c.device_rank_rows = im.slots->rank_capacity();
  c.device_rank_rows_free = im.free_rank_rows;
  c.device_adapters_free = std::min<int64_t>(im.free_slots, im.free_rank_rows / std::max(rank, 1));
  c.kv_tokens_total = limits_.kv_tokens();
  c.kv_tokens_free = (im.stats.kv_blocks_total - im.stats.kv_blocks_used) * limits_.block_size;
  return c;
}

std::vector<AdapterInfo> Engine::adapters() const {
  std::vector<AdapterInfo> out;
  const std::vector<AdapterListing> listing = impl_->catalog->list();
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  for (const AdapterListing& a : listing) {
    AdapterInfo info;
    info.name = a.name;
    info.path = a.path;
    info.source = a.source;
    info.base_model_name = a.base_model_name;
    info.content_hash = a.content_hash;
    info.rank = a.rank;
    info.target_modules = a.target_modules;
    info.bytes = a.bytes;
    info.registered = a.registered;
    info.last_used = a.last_used;
    const auto& keys = impl_->resident_keys;
    info.tier = a.key && std::find(keys.begin(), keys.end(), a.key) != keys.end() ? "device" : a.state;
    auto it = impl_->usage.find(a.name);
    if (it != impl_->usage.end()) {
      info.requests = it->second.requests;
      info.last_used = std::max(info.last_used, it->second.last_used);
    }
    out.push_back(std::move(info));
  }
  return out;
}

void Engine::start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->started) return;
  impl_->started = true;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

bool Engine::accepting() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->accepting;
}

Result<std::shared_ptr<RequestStream>> Engine::submit(EngineRequest request, std::function<void()> notify) {
  Impl& im = *impl_;
  const ModelConfig& c = model_->config();
  if (request.prompt.empty()) return invalid_argument("the prompt has no tokens");
  for (int32_t t : request.prompt)
    if (t < 0 || t >= c.vocab_size) return invalid_argument("prompt token id " + std::to_string(t) + " outside the vocabulary");
  LS_RETURN_IF_ERROR(validate_params(request.params, c.vocab_size));
  const int64_t total = static_cast<int64_t>(request.prompt.size()) + request.params.stop.max_new_tokens;
  if (total > limits_.max_model_len)
    return invalid_argument("This model's maximum context length is " + std::to_string(limits_.max_model_len) +
                            " tokens. However, you requested " + std::to_string(total) + " tokens (" +
                            std::to_string(request.prompt.size()) + " in the prompt, " +
                            std::to_string(request.params.stop.max_new_tokens) + " in the completion).");
  auto seq = std::make_unique<Sequence>();
  if (!request.adapter.empty()) {
    LS_ASSIGN_OR_RETURN(const AdapterSource source, parse_adapter_source(request.adapter_source));
    LS_ASSIGN_OR_RETURN(seq->claim, im.catalog->claim(request.adapter, source));
  }
  if (!request.params.stop.stop_strings.empty() && !model_->has_tokenizer())
    return invalid_argument("stop strings need a tokenizer; the model has none");
  seq->params = std::move(request.params);
  seq->prompt = std::move(request.prompt);
  seq->times.arrival = engine_clock_seconds();
  if (model_->has_tokenizer())
    seq->text.emplace(model_->tokenizer(), seq->params.skip_special_tokens, seq->params.stop.stop_strings,
                      seq->params.stop.include_stop_str_in_output);
  for (int32_t t : seq->prompt) seq->note_token(t, false);
  std::lock_guard<std::mutex> lock(im.mu);
  if (!im.accepting) return unavailable("the server is shutting down");
  const auto queued = static_cast<int32_t>(im.inbox.size()) + im.waiting_count.load();
  if (queued >= im.options.max_queued_requests)
    return resource_exhausted("Model is overloaded: " + std::to_string(queued) + " requests are waiting");
  seq->id = im.next_id++;
  seq->seed = seq->params.seed ? *seq->params.seed : im.seed_rng();
  seq->stream = std::make_shared<RequestStream>(seq->id);
  if (notify) seq->stream->set_notify(std::move(notify));
  std::shared_ptr<RequestStream> stream = seq->stream;
  im.inbox.push_back(std::move(seq));
  im.cv.notify_one();
  return stream;
}

void Engine::shutdown(double grace_seconds) {
  if (!impl_) return;
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lock(im.mu);
    im.accepting = false;
    if (!im.stopping) {
      im.stopping = true;
      im.deadline = engine_clock_seconds() + std::max(0.0, grace_seconds);
    }
    im.cv.notify_all();
  }
  if (im.thread.joinable()) im.thread.join();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->stats;
}

// ---- engine thread ----

RequestUpdate Engine::Impl::base_update(const Sequence& seq) const {
  RequestUpdate u;
  u.prompt_len = static_cast<int32_t>(seq.prompt.size());
  u.generated = static_cast<int32_t>(seq.output.size());
  u.seed = seq.seed;
  u.num_preemptions = seq.preemptions;
  u.times = seq.times;
  return u;
}

bool Engine::Impl::drain_inbox() {
  std::deque<std::unique_ptr<Sequence>> arrived;
  {
    std::lock_guard<std::mutex> lock(mu);
    arrived.swap(inbox);
    waiting_count += static_cast<int32_t>(arrived.size());  // still queued for submit's limit until publish recounts
  }
  for (auto& seq : arrived) {
    Sequence* s = seq.get();
    live.emplace(s->id, std::move(seq));
    scheduler->add(s);
  }
  return !arrived.empty();
}

void Engine::Impl::resolve_claims() {
  std::vector<std::pair<Sequence*, Status>> failed_loads;
  for (Sequence* s : scheduler->waiting()) {
    if (!s->adapter_pending()) continue;
    if (s->claim->ready()) s->adapter = s->claim->adapter();
    else if (s->claim->failed()) failed_loads.emplace_back(s, s->claim->error());
  }
  for (auto& [s, status] : failed_loads) finish(s, FinishReason::kError, status);
}

void Engine::Impl::finish(Sequence* seq, FinishReason reason, Status error, RequestUpdate* update) {
  const double now = engine_clock_seconds();
  scheduler->remove(seq);
  seq->times.finished = now;
  RequestUpdate u = update ? std::move(*update) : base_update(*seq);
  u.finished = true;
  u.reason = reason;
  u.error = std::move(error);
  u.times = seq->times;
  u.generated = static_cast<int32_t>(seq->output.size());
  if (seq->text && u.reason != FinishReason::kError) {
    auto rest = seq->text->take_rest();
    if (rest.is_ok()) u.text += rest.value();
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    ++stats.finished[metric_reason(reason)];
    stats.e2e.observe(now - seq->times.arrival);
    if (seq->times.scheduled > 0) {
      stats.queue.observe(seq->times.scheduled - seq->times.arrival);
      stats.inference.observe(now - seq->times.scheduled);
      if (seq->times.first_token > 0) {
        stats.prefill.observe(seq->times.first_token - seq->times.scheduled);
        stats.decode.observe(now - seq->times.first_token);
      }
    }
    stats.request_prompt_tokens.observe(static_cast<double>(seq->prompt.size()));
    stats.request_generation_tokens.observe(static_cast<double>(seq->output.size()));
    const std::string& name = seq->adapter_name();
    AdapterStats& a = stats.adapters[name];
    ++a.requests;
    a.e2e.observe(now - seq->times.arrival);
    if (seq->claim) {
      Usage& use = usage[name];
      ++use.requests;
      use.last_used = now;
    }
  }
  seq->stream->push(std::move(u));
  seq->finished = true;
  auto it = live.find(seq->id);
  if (it != live.end()) {
    retired.push_back(std::move(it->second));
    live.erase(it);
  }
}

RunnerSeq Engine::Impl::runner_seq(Sequence* seq, int32_t n) const {
  RunnerSeq r;
  const int32_t start = seq->num_computed;
  r.step.tokens.resize(static_cast<size_t>(n));
  for (int32_t j = 0; j < n; ++j) r.step.tokens[j] = seq->token_at(start + j);
  r.step.num_cached = start;
  r.step.block_table = seq->blocks->blocks();
  r.step.lora_slot = seq->slot;
  r.sample = start + n == seq->num_tokens();
  const bool prompt_lp = seq->params.prompt_logprobs >= 0 && !seq->prompt_logprobs_sent && start < static_cast<int32_t>(seq->prompt.size());
  r.step.logits = prompt_lp ? LogitsWanted::kAll : (r.sample ? LogitsWanted::kLast : LogitsWanted::kNone);
  if (prompt_lp) {
    r.prompt_logprobs = seq->params.prompt_logprobs;
    const auto p = static_cast<int32_t>(seq->prompt.size());
    for (int32_t j = 0; j < n; ++j) r.prompt_targets.push_back(start + j + 1 < p ? seq->prompt[start + j + 1] : -1);
  }
  r.sampling = seq->params.sampling;
  r.sampling.seed = seq->seed;
  r.sampling.step = seq->output.size();
  r.penalties = seq->params.penalties;
  r.history = seq->params.penalties.active() ? &seq->history : nullptr;
  r.logprobs = seq->params.logprobs;
  return r;
}

void Engine::Impl::apply(Sequence* seq, int32_t n, RunnerResult& result, double now, std::vector<NewToken>& fresh) {
  if (seq->num_computed == 0) seq->prompt_logprobs.clear();  // a recomputation after preemption starts over
  seq->num_computed += n;
  for (TokenLogprob& t : result.prompt) {
    TokenInfo info;
    info.id = t.token;
    info.logprob = t.logprob;
    info.top = std::move(t.top);
    seq->prompt_logprobs.push_back(std::move(info));
  }
  if (result.sampled.token < 0) return;  // a prompt chunk that does not end the prompt
  const int32_t token = result.sampled.token;
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    AdapterStats& a = stats.adapters[seq->adapter_name()];
    if (seq->times.first_token == 0) {
      seq->times.first_token = now;
      stats.ttft.observe(now - seq->times.arrival);
      a.ttft.observe(now - seq->times.arrival);
    } else {
      stats.itl.observe(now - seq->last_token_time);
      a.itl.observe(now - seq->last_token_time);
    }
    ++stats.generation_tokens;
    ++a.generation_tokens;
  }
  seq->last_token_time = now;
  seq->output.push_back(token);
  seq->note_token(token, true);
  NewToken t{seq, TokenInfo{}, false};
  t.info.id = token;
  t.info.logprob = result.sampled.logprob;
  t.info.top = std::move(result.sampled.top);
  t.prompt_done = seq->params.prompt_logprobs >= 0 && !seq->prompt_logprobs_sent;
  // Stops that need no text end the sequence before the next step is scheduled.
  const StopConditions& stop = seq->params.stop;
  const auto generated = static_cast<int32_t>(seq->output.size());
  if (generated >= stop.min_new_tokens) {
    const auto& eos = model->eos_ids();
    if (!stop.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
      seq->stop_reason = FinishReason::kEos;
    } else if (std::find(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), token) != stop.stop_token_ids.end()) {
      seq->stop_reason = FinishReason::kStopToken;
    }
  }
  if (seq->stop_reason == FinishReason::kNone && generated >= stop.max_new_tokens) seq->stop_reason = FinishReason::kLength;
  if (seq->stop_reason != FinishReason::kNone) scheduler->remove(seq);
  fresh.push_back(std::move(t));
}

void Engine::Impl::emit(std::vector<NewToken>& fresh) {
  for (NewToken& t : fresh) {
    Sequence* seq = t.seq;
    if (seq->finished) continue;  // aborted meanwhile
    RequestUpdate u = base_update(*seq);
    if (seq->text) {
      seq->text->set_stops_active(static_cast<int32_t>(seq->output.size()) >= seq->params.stop.min_new_tokens);
      auto piece = seq->text->add(t.info.id);
      if (!piece.is_ok()) {
        finish(seq, FinishReason::kError, piece.status());
        continue;
      }
      t.info.text = std::move(piece).value();
    }
    u.tokens.push_back(std::move(t.info));
    if (t.prompt_done) {
      u.prompt_tokens = std::move(seq->prompt_logprobs);
      seq->prompt_logprobs.clear();
      seq->prompt_logprobs_sent = true;
    }
    FinishReason reason = seq->stop_reason;
    if (reason == FinishReason::kEos || reason == FinishReason::kStopToken) {
      u.stop_token = seq->output.back();
    } else if (seq->text && seq->text->matched_stop()) {
      // A stop string ends the sequence even if the step after this token is already running: that step's
      // token for it is dropped when collected.
      reason = FinishReason::kStopSequence;
      u.stop_string = *seq->text->matched_stop();
    }
    if (reason != FinishReason::kNone) {
      finish(seq, reason, Status::ok(), &u);
      continue;
    }
    if (seq->text) u.text = seq->text->take_ready();
    seq->stream->push(std::move(u));
  }
  fresh.clear();
}

Status Engine::Impl::launch(const SchedulerOutput& out, double now) {
  std::vector<RunnerSeq> seqs;
  seqs.reserve(out.scheduled.size());
  InFlight f;
  f.scheduled = out.scheduled;
  bool has_lora = false;
  f.step = ++steps_launched;
  for (const ScheduledSeq& s : out.scheduled) {
    seqs.push_back(runner_seq(s.seq, s.num_tokens));
    f.decode_only &= s.num_tokens == 1 && s.seq->prefill_done();
    f.tokens += s.num_tokens;
    if (s.seq->slot >= 0) {
      has_lora = true;
      slots->reading(s.seq->slot, f.step);  // before any of its ops is queued
    }
  }
  f.launched = now;
  LS_RETURN_IF_ERROR(runner->launch(seqs, has_lora ? slots->table() : nullptr));
  std::lock_guard<std::mutex> lock(stats_mu);
  for (const ScheduledSeq& s : out.scheduled) {
    const int32_t prompt_part = std::max(0, std::min<int32_t>(s.num_tokens, static_cast<int32_t>(s.seq->prompt.size()) - s.seq->num_computed));
    stats.prompt_tokens += prompt_part;
    stats.adapters[s.seq->adapter_name()].prompt_tokens += prompt_part;
  }
  inflight = std::move(f);
  return Status::ok();
}

void Engine::Impl::collect(std::vector<NewToken>& fresh) {
  InFlight f = std::move(*inflight);
  inflight.reset();
  auto results = runner->collect();
  const double now = engine_clock_seconds();
  if (!results.is_ok()) {
    // A failed step fails its requests (with the reason); the server goes on.
    for (const ScheduledSeq& s : f.scheduled)
      if (!s.seq->finished) finish(s.seq, FinishReason::kError, results.status());
    return;
  }
  slots->steps_done(f.step);
  {
    std::lock_guard<std::mutex> lock(stats_mu);
    ++stats.steps;
    stats.iteration_tokens.observe(static_cast<double>(f.tokens));
    if (f.decode_only) {
      // The device time of this step: from when it could start (launched, and the step before it done).
      ++stats.decode_steps;
      stats.decode_step_seconds += now - std::max(f.launched, last_collect);
    }
  }
  last_collect = now;
  for (size_t i = 0; i < f.scheduled.size(); ++i) {
    Sequence* seq = f.scheduled[i].seq;
    if (seq->finished) continue;  // finished after this step was launched: its token is dropped
    apply(seq, f.scheduled[i].num_tokens, results.value()[i], now, fresh);
  }
}

void Engine::Impl::publish(double now) {
  last_publish = now;
  std::lock_guard<std::mutex> lock(stats_mu);
  stats.running = static_cast<int32_t>(scheduler->running().size());
  stats.waiting = static_cast<int32_t>(scheduler->waiting().size());
  stats.kv_blocks_used = pool->num_blocks() - pool->num_free();
  stats.preemptions = scheduler->preemptions();
  waiting_count = stats.waiting;
  resident_keys = slots->resident_keys();
  std::map<std::string, std::pair<int32_t, int32_t>> counts;
  for (const Sequence* s : scheduler->running()) ++counts[s->adapter_name()].first;
  for (const Sequence* s : scheduler->waiting()) ++counts[s->adapter_name()].second;
  stats.running_adapters.clear();
  stats.waiting_adapters.clear();
  for (auto& [name, a] : stats.adapters) a.running = a.waiting = 0;
  for (const auto& [name, c] : counts) {
    AdapterStats& a = stats.adapters[name];
    a.running = c.first;
    a.waiting = c.second;
    if (name.empty()) continue;
    if (c.first) stats.running_adapters.push_back(name);
    if (c.second) stats.waiting_adapters.push_back(name);
  }
  for (const Sequence* s : scheduler->running())
    if (s->claim) usage[s->adapter_name()].last_used = now;
  free_slots = slots->free_slots();
  free_rank_rows = slots->free_rank_rows();
  stats.adapter_slot_loads = slots->loads();
  stats.adapter_slot_loads_done = slots->loads_done();
  stats.adapter_slot_load_seconds = slots->load_seconds();
  stats.adapter_slot_load_max_seconds = slots->max_load_seconds();
  stats.adapter_slot_wait_seconds = scheduler->slot_waits();
  stats.adapter_slot_wait_max_seconds = scheduler->slot_wait_max_seconds();
  const AdapterCatalogStats cs = catalog->stats();
  stats.adapter_loads = cs.loads;
  stats.adapter_load_failures = cs.load_failures;
  stats.adapter_evictions = cs.evictions;
  stats.adapter_load_seconds = cs.load_seconds;
  stats.host_adapters = cs.host_adapters;
  stats.host_adapter_bytes = cs.host_bytes;
}

void Engine::Impl::beside_step() {
  bool loaded;
  {
    std::lock_guard<std::mutex> lock(mu);
    loaded = adapter_loaded;
    adapter_loaded = false;
  }
  if (drain_inbox() || loaded) {
    // Their slot copies begin now, beside the step (after it only when it may read the rows they take), so they
    // can land before the next step is built.
    resolve_claims();
    for (auto& [seq, status] : scheduler->prefetch(engine_clock_seconds())) finish(seq, FinishReason::kError, status);
  }
  if (runner->step_done()) return;
  // A condition-variable wait rather than spinning on the step (as a blocking collect does on CUDA): the thread
  // sleeps for all but a few microseconds of each kStepPoll, arrivals still wake it at once, and the step's end
  // costs the device at most about kStepPoll of idle time before the next step is launched.
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, kStepPoll, [this] { return !inbox.empty() || adapter_loaded; });
}

void Engine::Impl::loop() {
  // The waits here are tens of microseconds (kStepPoll, the copy polls below): without this the kernel's default
  // 50 us of timer slack for a sleeping thread would double them.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);  // 1 us, this thread only
  std::vector<NewToken> fresh;
  for (;;) {
    if (!inflight) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return !inbox.empty() || stopping || !live.empty(); });
      if (stopping && inbox.empty() && live.empty()) break;
    } else if (!runner->step_done()) {
      beside_step();
      continue;
    }
    drain_inbox();
    double now = engine_clock_seconds();
    bool abort_all;
    {
      std::lock_guard<std::mutex> lock(mu);
      abort_all = stopping && now >= deadline;
    }
    std::vector<Sequence*> gone;
    for (auto& [id, seq] : live)
      if (abort_all || seq->stream->cancelled()) gone.push_back(seq.get());
    for (Sequence* s : gone) finish(s, FinishReason::kAbort);
    if (inflight) collect(fresh);  // the step launched last time round, done
    if (!inflight) retired.clear();  // no step in flight can name them any more
    if (abort_all) {
      emit(fresh);
      publish(engine_clock_seconds());
      break;
    }
    resolve_claims();
    now = engine_clock_seconds();
    SchedulerOutput out = scheduler->schedule(now);
    const uint64_t landed_before = slots->loads_done();
    const bool copying = slots->poll(now);  // adapter copies in flight to the device slots (some just begun)
    // A copy that the poll saw land after this schedule looked: its request may start at the next one, now.
    const bool landed = slots->loads_done() != landed_before;
    for (auto& [seq, status] : out.failed) finish(seq, FinishReason::kError, status);
    if (!out.scheduled.empty()) {
      if (Status s = launch(out, now); !s.is_ok())
        for (const ScheduledSeq& x : out.scheduled) finish(x.seq, FinishReason::kError, s);
    }
    // While the device runs the new step: text, stop strings and updates of the tokens just collected.
    emit(fresh);
    now = engine_clock_seconds();
    if (!inflight || now - last_publish > 0.005) publish(now);
    if (!inflight && out.scheduled.empty() && !live.empty() && !landed) {
      // Nothing runs, yet requests wait: for a host load (whose loader wakes us), for KV blocks or slots, or for
      // an adapter copy to the device, which nothing signals: polled every 100 us while one is in flight, so the
      // request starts within that of its copy landing; otherwise every 2 ms. (Once a copy lands the loop turns
      // at once: sleeping 2 ms then exposed 2 ms more of it to its request, H200 run 82.)
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, copying ? std::chrono::microseconds(100) : std::chrono::microseconds(2000),
                  [this] { return !inbox.empty() || stopping; });
    }
  }
  if (inflight) {
    inflight.reset();
    (void)runner->collect();
  }
  // No step can name them any more: their streams (and whatever the streams' wake functions hold, such as an
  // HTTP server's executors) go now, while their owners still exist, not with the engine.
  retired.clear();
}

}  // namespace ls
