// adapter_load_overlap.cpp: see adapter_load_overlap.h.
#include "adapter_load_overlap.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine/generate.h"

namespace ls::testing {

LongCopy::LongCopy(Backend& backend, size_t bytes)
    : src(backend.allocate_host(bytes).value()), dst(backend.allocate(bytes).value()) {
  Backend::HostCopy block;
  block.dst = dst.data();
  block.src = src.data();
  block.width = bytes;
  fence = backend.copy_beside(&block, 1, Backend::CopyAfter::kOps);
}

namespace {

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";

RequestUpdate wait_final(RequestStream& s, std::vector<int32_t>* tokens) {
  RequestUpdate u = s.wait();
  for (;;) {
    for (const TokenInfo& t : u.tokens) tokens->push_back(t.id);
    if (u.finished) return u;
    u = s.wait();
  }
}

}  // namespace

bool check_adapter_load_overlaps_steps(const std::string& device, size_t block_bytes, std::string* why) {
  ServedModelOptions mo;
  mo.model = kDemo + "/base";
  mo.backend.device = device;
  auto served = ServedModel::load(mo);
  if (!served.is_ok()) {
    *why = served.status().to_string();
    return false;
  }
  Backend& backend = (*served)->backend();
  EngineOptions eo;
  eo.kv_cache_bytes = 64 << 20;
  eo.max_loras = 2;
  auto engine = Engine::create(**served, eo);
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  if (!engine.is_ok()) return true;
  Engine& e = **engine;
  // Registered directly: staged by the catalog's loader, so the slot load only copies.
  EXPECT_TRUE(e.add_adapter("upper", kDemo + "/adapters/upper").is_ok());
  auto request = [&](const std::string& adapter) {
    EngineRequest r;
    r.prompt = (*served)->codec().encode("make this loud: quiet words", true).value();
    r.adapter = adapter;
    r.params.stop.max_new_tokens = 6;
    r.params.stop.ignore_eos = true;
    return r;
  };
  // A long copy queued first (before the engine thread runs, which owns the backend from then on): the adapter's
  // copy, queued when its request takes a slot, lands only after it.
  const LongCopy ahead(backend, block_bytes);
  e.start();
  auto adapted = e.submit(request("upper")).value();
  auto base = e.submit(request("")).value();
  std::vector<int32_t> adapted_tokens, base_tokens;
  const RequestUpdate a = wait_final(*adapted, &adapted_tokens), b = wait_final(*base, &base_tokens);
  EXPECT_NE(a.reason, FinishReason::kError) << a.error.to_string();
  EXPECT_NE(b.reason, FinishReason::kError) << b.error.to_string();
  // The base request, behind the adapter's in arrival order, ran to the end while the adapter's slot was loading.
  EXPECT_LT(b.times.finished, a.times.scheduled) << "the base request waited for the adapter's copy";
  EngineStats st = e.stats();  // published by the engine thread just after the last update
  for (int i = 0; i < 500 && st.adapter_slot_loads_done < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    st = e.stats();
  }
  EXPECT_EQ(st.adapter_slot_loads, 1u);
  EXPECT_EQ(st.adapter_slot_loads_done, 1u);
  EXPECT_GT(st.adapter_slot_load_max_seconds, 0.0);
  EXPECT_LE(st.adapter_slot_load_max_seconds, a.times.scheduled - a.times.arrival + 1e-6);
  // With seats free it was next in line from its first step on: all that load was exposed to it, and no more
  // than the engine's loop takes to turn (its poll after a schedule may see the copy land; the loop then turns at
  // once, where it once slept 2 ms first: H200 run 82).
  EXPECT_EQ(st.adapter_slot_wait_seconds.count, 1u);
  EXPECT_GE(st.adapter_slot_wait_max_seconds, st.adapter_slot_load_max_seconds - 1e-6);
  EXPECT_LT(st.adapter_slot_wait_max_seconds, st.adapter_slot_load_max_seconds + 1e-3);
  EXPECT_NEAR(st.adapter_slot_wait_seconds.sum, st.adapter_slot_wait_max_seconds, 1e-12);
  // Now resident: the same request gives the same tokens (so the first ran on the adapter's copied weights),
  // and they differ from the base model's (so the comparison can tell).
  std::vector<int32_t> again;
  auto resident = e.submit(request("upper")).value();
  wait_final(*resident, &again);
  EXPECT_EQ(adapted_tokens, again);
  EXPECT_NE(adapted_tokens, base_tokens) << "the adapter does not change this prompt's output";
  for (int i = 0; i < 500 && e.stats().running != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(e.stats().adapter_slot_loads, 1u) << "the resident adapter was loaded again";
  e.shutdown(0);
  backend.wait_copies(ahead.fence);  // the engine thread is gone: the backend is ours again
  return true;
}

}  // namespace ls::testing
