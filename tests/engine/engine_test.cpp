// engine_test.cpp: the serving engine on the demo model (CPU): a request's output does not depend on what
// shares its steps (greedy and seeded sampling), preemption under a small KV pool loses nothing, stops and
// finish reasons, log-probabilities, aborts free the KV cache, a rare adapter is not starved by a popular one
// with one adapter slot, slots share their rank rows (evicting more when a rank does not fit), adapter slot loads
// overlap the steps (adapter_load_overlap.h) and begin before a seat frees, a request cancelled while its
// adapter's copy is in flight gives its slot back, and shutdown lets running requests finish.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "adapter_load_overlap.h"
#include "core/json.h"
#include "engine/generate.h"

namespace ls {
namespace {

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";
const char* const kAdapters[] = {"calc", "reverse", "sql", "upper"};

ServedModel& demo() {
  static std::unique_ptr<ServedModel> model = [] {
    ServedModelOptions o;
    o.model = kDemo + "/base";
    auto m = ServedModel::load(o);
    LS_CHECK(m.is_ok()) << m.status().to_string();
    return std::move(m).value();
  }();
  return *model;
}

std::unique_ptr<Engine> make_engine(EngineOptions o = {}) {
  if (o.kv_cache_bytes == 0) o.kv_cache_bytes = 64 << 20;
  auto e = Engine::create(demo(), o);
  LS_CHECK(e.is_ok()) << e.status().to_string();
  for (const char* name : kAdapters) LS_CHECK((*e)->add_adapter(name, kDemo + "/adapters/" + name).is_ok());
  (*e)->start();
  return std::move(e).value();
}

// The eval prompts of each demo task, as chat token ids.
std::vector<std::pair<std::string, std::vector<int32_t>>> task_prompts(int per_task) {
  std::vector<std::pair<std::string, std::vector<int32_t>>> out;
  for (const char* name : kAdapters) {
    const Json eval = read_json_file(kDemo + "/eval/" + name + ".json").value();
    for (int i = 0; i < per_task; ++i)
      out.emplace_back(name, eval.at("prompts")[i].at("prompt_ids").get<std::vector<int32_t>>());
  }
  return out;
}

// A mix of adapters and the base, greedy and seeded sampling, different output lengths.
std::vector<EngineRequest> mixed_requests(int per_task) {
  std::vector<EngineRequest> out;
  int i = 0;
  for (auto& [task, ids] : task_prompts(per_task)) {
    EngineRequest r;
    r.prompt = ids;
    r.adapter = i % 5 == 4 ? "" : task;
    r.params.stop.max_new_tokens = 8 + (i * 7) % 40;
    r.params.stop.ignore_eos = i % 3 == 0;
    if (i % 2 == 1) {
      r.params.sampling.temperature = 0.8f;
      r.params.sampling.top_p = 0.9f;
      r.params.sampling.top_k = 50;
      r.params.seed = 1000 + i;
    }
    out.push_back(std::move(r));
    ++i;
  }
  return out;
}

std::vector<Generation> run(Engine& e, std::vector<EngineRequest> requests) {
  auto g = generate_all(e, std::move(requests));
  LS_CHECK(g.is_ok()) << g.status().to_string();
  return std::move(g).value();
}

// Each request alone in an engine of its own.
std::vector<Generation> run_alone(const std::vector<EngineRequest>& requests) {
  EngineOptions o;
  o.max_num_seqs = 1;
  auto e = make_engine(o);
  std::vector<Generation> out;
  for (const EngineRequest& r : requests) out.push_back(run(*e, {r}).front());
  return out;
}

TEST(Engine, OutputsDoNotDependOnTheBatch) {
  const std::vector<EngineRequest> requests = mixed_requests(4);
  auto e = make_engine();
  const std::vector<Generation> together = run(*e, requests);
  const std::vector<Generation> alone = run_alone(requests);
  ASSERT_EQ(together.size(), alone.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "request " << i << " (adapter \"" << requests[i].adapter << "\")";
    EXPECT_EQ(together[i].text, alone[i].text) << "request " << i;
    EXPECT_EQ(together[i].reason, alone[i].reason) << "request " << i;
  }
  const EngineStats s = e->stats();
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.running + s.waiting, 0);
}

TEST(Engine, PreemptionUnderASmallKvPoolLosesNothing) {
  std::vector<EngineRequest> requests = mixed_requests(2);
  for (EngineRequest& r : requests) {
    r.params.stop.max_new_tokens = 48;
    r.params.stop.ignore_eos = true;
  }
  EngineOptions o;
  const auto per_block = static_cast<int64_t>(KvCache::bytes_per_block(demo().config(), 16, DType::kF32));
  o.kv_cache_bytes = 16 * per_block;  // 256 tokens for 8 requests of ~70-110 tokens each
  o.max_model_len = 256;
  auto e = make_engine(o);
  const std::vector<Generation> small = run(*e, requests);
  EXPECT_GT(e->stats().preemptions, 0u) << "the pool was meant to be too small for the load";
  const std::vector<Generation> alone = run_alone(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(small[i].reason, FinishReason::kLength) << i;
    EXPECT_EQ(small[i].tokens, alone[i].tokens) << "request " << i << " preempted " << small[i].num_preemptions;
  }
  EXPECT_EQ(e->stats().kv_blocks_used, 0);
}

EngineRequest calc_question(const std::string& q) {
  EngineRequest r;
  r.prompt = demo().codec().encode(q, true).value();
  r.adapter = "calc";
  return r;
}

TEST(Engine, StopsAndFinishReasons) {
  auto e = make_engine();
  EngineRequest plain = calc_question("What is 127 + 385?");
  const Generation g = run(*e, {plain}).front();
  ASSERT_EQ(g.text, "512");
  ASSERT_EQ(g.reason, FinishReason::kEos);
  ASSERT_EQ(g.tokens.size(), 4u);

  EngineRequest stop = plain;
  stop.params.stop.stop_strings = {"12"};
  Generation s = run(*e, {stop}).front();
  EXPECT_EQ(s.reason, FinishReason::kStopSequence);
  EXPECT_EQ(s.stop_string, "12");
  EXPECT_EQ(s.text, "5");
  stop.params.stop.include_stop_str_in_output = true;
  EXPECT_EQ(run(*e, {stop}).front().text, "512");

  EngineRequest late = plain;  // a stop string inside the first min_tokens tokens does not count
  late.params.stop.stop_strings = {"1"};
  late.params.stop.min_new_tokens = 3;
  s = run(*e, {late}).front();
  EXPECT_EQ(s.reason, FinishReason::kEos);
  EXPECT_EQ(s.text, "512");

  EngineRequest token = plain;
  token.params.stop.stop_token_ids = {g.tokens[1]};
  s = run(*e, {token}).front();
  EXPECT_EQ(s.reason, FinishReason::kStopToken);
  EXPECT_EQ(s.stop_token, g.tokens[1]);
  EXPECT_EQ(s.tokens, std::vector<int32_t>(g.tokens.begin(), g.tokens.begin() + 2));

  EngineRequest length = plain;
  length.params.stop.max_new_tokens = 2;
  s = run(*e, {length}).front();
  EXPECT_EQ(s.reason, FinishReason::kLength);
  EXPECT_EQ(s.tokens.size(), 2u);

  EngineRequest min_tokens = plain;
  min_tokens.params.stop.min_new_tokens = 6;
  min_tokens.params.stop.max_new_tokens = 6;
  s = run(*e, {min_tokens}).front();
  EXPECT_EQ(s.tokens.size(), 6u) << "end-of-sequence must not end generation before min_tokens";
  EXPECT_EQ(s.tokens[3], g.tokens[3]);

  EngineRequest ignore = plain;
  ignore.params.stop.ignore_eos = true;
  ignore.params.stop.max_new_tokens = 7;
  EXPECT_EQ(run(*e, {ignore}).front().tokens.size(), 7u);
}

TEST(Engine, LogprobsOfTokensAndPrompt) {
  auto e = make_engine();
  EngineRequest r = calc_question("What is 12 * 11?");
  r.params.logprobs = 3;
  r.params.prompt_logprobs = 2;
  const Generation g = run(*e, {r}).front();
  ASSERT_FALSE(g.token_info.empty());
  for (const TokenInfo& t : g.token_info) {
    ASSERT_EQ(t.top.size(), 3u);
    EXPECT_EQ(t.top[0].first, t.id) << "greedy picks the most likely token";
    EXPECT_FLOAT_EQ(t.logprob, t.top[0].second);
    EXPECT_LE(t.top[1].second, t.top[0].second);
    EXPECT_LE(t.logprob, 0.0f);
  }
  ASSERT_EQ(g.prompt_tokens.size(), r.prompt.size() - 1);
  for (size_t i = 0; i < g.prompt_tokens.size(); ++i) {
    EXPECT_EQ(g.prompt_tokens[i].id, r.prompt[i + 1]);
    EXPECT_EQ(g.prompt_tokens[i].top.size(), 2u);
    EXPECT_LE(g.prompt_tokens[i].logprob, g.prompt_tokens[i].top[0].second + 1e-6f);
  }
}

TEST(Engine, SeededSamplingIsReproducibleAndSeedsDiffer) {
  auto e = make_engine();
  EngineRequest r;
  r.prompt = demo().tokenizer().encode("def ", true).value();
  r.params.sampling.temperature = 1.0f;
  r.params.stop.max_new_tokens = 24;
  r.params.stop.ignore_eos = true;
  r.params.seed = 7;
  EngineRequest other = r;
  other.params.seed = 8;
  const auto g = run(*e, {r, other, r});
  EXPECT_EQ(g[0].tokens, g[2].tokens);
  EXPECT_NE(g[0].tokens, g[1].tokens);
  EXPECT_EQ(g[0].seed, 7u);
  EngineRequest unseeded = r;
  unseeded.params.seed.reset();
  const auto u = run(*e, {unseeded, unseeded});
  EXPECT_NE(u[0].seed, u[1].seed) << "requests without a seed get their own";
}

TEST(Engine, CancelledStreamsFreeTheirBlocks) {
  auto e = make_engine();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : mixed_requests(4)) {
    r.params.stop.max_new_tokens = 300;
    r.params.stop.ignore_eos = true;
    streams.push_back(e->submit(std::move(r)).value());
  }
  for (auto& s : streams) {
    RequestUpdate first = s->wait();
    EXPECT_FALSE(first.finished);
    s->cancel();
  }
  for (auto& s : streams) {
    RequestUpdate u = s->wait();
    while (!u.finished) u = s->wait();
    EXPECT_EQ(u.reason, FinishReason::kAbort);
  }
  EngineStats st = e->stats();
  for (int i = 0; i < 500 && (st.kv_blocks_used != 0 || st.running != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = e->stats();
  }
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running, 0);
  EXPECT_GE(st.finished["abort"], streams.size());
}

TEST(Engine, ARareAdapterIsNotStarvedWithOneSlot) {
  EngineOptions o;
  o.max_loras = 1;
  o.max_num_seqs = 4;
  auto e = make_engine(o);
  auto make = [](const std::string& adapter) {
    EngineRequest r;
    r.prompt = demo().codec().encode("What is 3 + 4?", true).value();
    r.adapter = adapter;
    r.params.stop.max_new_tokens = 24;
    r.params.stop.ignore_eos = true;
    return r;
  };
  std::vector<EngineRequest> queue = {make("calc"), make("upper")};
  for (int i = 0; i < 12; ++i) queue.push_back(make("calc"));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : queue) streams.push_back(e->submit(std::move(r)).value());
  std::vector<RequestTimes> times;
  for (auto& s : streams) {
    RequestUpdate u = s->wait();
    while (!u.finished) u = s->wait();
    times.push_back(u.times);
  }
  // "upper" arrived second: it starts before, and finishes before, every calc request that arrived after it
  // (with one slot, those run only once its slot is free again).
  for (size_t i = 2; i < times.size(); ++i) {
    EXPECT_LT(times[1].scheduled, times[i].scheduled) << "calc request " << i << " started before the rare adapter";
    EXPECT_LT(times[1].finished, times[i].finished) << "calc request " << i << " finished before the rare adapter";
  }
}

TEST(Engine, SlotsShareTheirRankRowsAndEvictMoreWhenARankDoesNotFit) {
  // max_loras 2 x max_lora_rank 32 = 64 rank rows. sql (rank 8) takes [0, 8), calc (32) [8, 40); reverse (32)
  // then replaces sql, the older, but 8 + 24 free rows hold no range of 32 until calc's slot gives its rows up.
  EngineOptions small;
  small.max_loras = 2;
  small.max_lora_rank = 32;
  auto e = make_engine(small);
  auto reference = make_engine();
  for (const char* adapter : {"sql", "calc", "reverse", "upper", "calc", "sql", "reverse"}) {
    EngineRequest r;
    r.prompt = demo().codec().encode("What is 12 + 30?", true).value();
    r.adapter = adapter;
    r.params.stop.max_new_tokens = 12;
    r.params.stop.ignore_eos = true;
    EXPECT_EQ(run(*e, {r}).front().tokens, run(*reference, {r}).front().tokens) << adapter;
  }
  EXPECT_GE(e->stats().adapter_slot_loads, 6u);
  // Nothing runs now: every row may be taken (once the engine has published the last release).
  for (int i = 0; i < 1000 && e->capacity(16).device_rank_rows_free != 64; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const EngineCapacity c = e->capacity(16);
  EXPECT_EQ(c.device_rank_rows, 64);
  EXPECT_EQ(c.device_rank_rows_free, 64);
  EXPECT_EQ(c.device_adapters_free, 2);
  EXPECT_EQ(e->capacity(64).device_adapters_free, 1);
}

TEST(Engine, AdapterSlotLoadsOverlapTheSteps) {
  std::string why;
  ASSERT_TRUE(testing::check_adapter_load_overlaps_steps("cpu", size_t{512} << 20, &why)) << why;
}

TEST(Engine, SlotLoadsBeginBeforeASeatFrees) {
  // One seat, taken by a long base request; an adapter request queued behind it gets its slot (and its copy
  // begun) while the seat is still taken, so its adapter is on the device when the seat frees.
  EngineOptions o;
  o.max_num_seqs = 1;
  auto e = make_engine(o);
  EngineRequest base = calc_question("What is 5 + 6?");
  base.adapter = "";
  base.params.stop.max_new_tokens = 160;
  base.params.stop.ignore_eos = true;
  EngineRequest adapted = calc_question("What is 7 + 8?");
  adapted.params.stop.max_new_tokens = 8;
  adapted.params.stop.ignore_eos = true;
  auto first = e->submit(base).value();
  RequestUpdate u = first->wait();  // its first token: it holds the seat
  std::vector<int32_t> first_tokens;
  for (const TokenInfo& t : u.tokens) first_tokens.push_back(t.id);
  ASSERT_FALSE(u.finished);
  auto second = e->submit(adapted).value();
  // One snapshot (published at once) with the load begun, the base request running and the adapter's waiting:
  // without prefetch the load would begin only once the base request had left the seat.
  EngineStats seen = e->stats();
  for (int i = 0; i < 4000 && seen.adapter_slot_loads == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    seen = e->stats();
  }
  EXPECT_EQ(seen.adapter_slot_loads, 1u) << "the adapter request never took a slot";
  EXPECT_EQ(seen.running, 1) << "the slot load began only once the seat was free";
  EXPECT_EQ(seen.waiting, 1);
  while (!u.finished) {
    u = first->wait();
    for (const TokenInfo& t : u.tokens) first_tokens.push_back(t.id);
  }
  std::vector<int32_t> second_tokens;
  RequestUpdate v = second->wait();
  for (;; v = second->wait()) {
    for (const TokenInfo& t : v.tokens) second_tokens.push_back(t.id);
    if (v.finished) break;
  }
  EXPECT_GT(v.times.scheduled, u.times.first_token);
  // The same tokens as each alone; the copy had long landed when the seat freed, so nothing waited for it.
  const std::vector<Generation> alone = run_alone({base, adapted});
  EXPECT_EQ(first_tokens, alone[0].tokens);
  EXPECT_EQ(second_tokens, alone[1].tokens);
  EngineStats st = e->stats();
  EXPECT_EQ(st.adapter_slot_loads, 1u);
  EXPECT_EQ(st.adapter_slot_wait_seconds.count, 0u) << "waited " << st.adapter_slot_wait_max_seconds << " s";
}

TEST(Engine, ARequestCancelledWhileItsAdapterLoadsGivesItsSlotBack) {
  EngineOptions o;
  o.kv_cache_bytes = 64 << 20;
  o.max_loras = 1;
  auto e = Engine::create(demo(), o).value();
  for (const char* name : {"calc", "upper"}) ASSERT_TRUE(e->add_adapter(name, kDemo + "/adapters/" + name).is_ok());
  // A long copy ahead of the adapter's on the copy queue keeps the adapter's in flight (demo() is this test's).
  Backend& backend = demo().backend();
  const testing::LongCopy ahead(backend, size_t{256} << 20);
  e->start();
  auto calc = e->submit(calc_question("What is 2 + 2?")).value();
  for (int i = 0; i < 1000 && e->stats().adapter_slot_loads == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(e->stats().adapter_slot_loads, 1u) << "the calc request never took the slot";
  EXPECT_EQ(e->stats().adapter_slot_loads_done, 0u) << "the copy was meant to be still in flight";
  EXPECT_EQ(e->capacity(8).device_slots_free, 0);
  EXPECT_EQ(e->capacity(8).device_adapters_free, 0);
  EXPECT_EQ(e->capacity(8).device_rank_rows_free, e->capacity(8).device_rank_rows - 32) << "calc holds 32 rows";
  calc->cancel();
  size_t tokens = 0;
  RequestUpdate u = calc->wait();
  for (tokens += u.tokens.size(); !u.finished; tokens += u.tokens.size()) u = calc->wait();
  EXPECT_EQ(u.reason, FinishReason::kAbort);
  EXPECT_EQ(tokens, 0u) << "the request ran before its adapter's copy landed";
  // The slot is free again; the next adapter takes it once the cancelled copy has landed, and runs right.
  EngineRequest upper = calc_question("make this loud");
  upper.adapter = "upper";
  upper.params.stop.max_new_tokens = 4;
  upper.params.stop.ignore_eos = true;
  auto out = generate_all(*e, {upper});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out.value()[0].tokens.size(), 4u);
  EngineStats st = e->stats();  // published by the engine thread just after the last update
  for (int i = 0; i < 500 && st.adapter_slot_loads_done < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    st = e->stats();
  }
  EXPECT_EQ(st.adapter_slot_loads, 2u);
  EXPECT_EQ(st.adapter_slot_loads_done, 2u);
  e->shutdown(0);
  backend.wait_copies(ahead.fence);
}

TEST(Engine, RefusesBadRequestsClearly) {
  auto e = make_engine();
  EngineRequest r = calc_question("What is 1 + 1?");
  r.adapter = "nope";
  EXPECT_EQ(e->submit(r).status().code(), ErrorCode::kNotFound);
  r.adapter = "";
  r.params.stop.max_new_tokens = e->limits().max_model_len;
  auto too_long = e->submit(r);
  EXPECT_EQ(too_long.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("maximum context length"), std::string::npos);
  r.params.stop.max_new_tokens = 4;
  r.params.sampling.temperature = -1;
  EXPECT_EQ(e->submit(r).status().code(), ErrorCode::kInvalidArgument);
  r.params.sampling.temperature = 0;
  r.prompt = {999999};
  EXPECT_EQ(e->submit(r).status().code(), ErrorCode::kInvalidArgument);
  r.prompt = {};
  EXPECT_EQ(e->submit(r).status().code(), ErrorCode::kInvalidArgument);
}

TEST(Engine, ShutdownLetsRunningRequestsFinish) {
  auto e = make_engine();
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : mixed_requests(2)) streams.push_back(e->submit(std::move(r)).value());
  e->shutdown(30.0);
  for (auto& s : streams) {
    RequestUpdate u = s->wait();
    while (!u.finished) u = s->wait();
    EXPECT_NE(u.reason, FinishReason::kAbort);
    EXPECT_NE(u.reason, FinishReason::kError);
  }
  EXPECT_FALSE(e->accepting());
  EXPECT_EQ(e->submit(calc_question("What is 2 + 2?")).status().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace ls
