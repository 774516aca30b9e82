// demo_model_test.cpp: the demo model (models/demo, made by tools/demo_model) on the CPU engine. For each adapter's
// 50 held-out task prompts (models/demo/eval/NAME.json):
//  - our tokenizer and chat template turn the prompt into exactly the text and ids transformers used;
//  - greedy outputs, for the adapter and for the base model, equal the transformers+peft float32 references
//    token for token (all 4 x 50 x 2 requests submitted together to the serving engine, so they run in
//    mixed-adapter batches), and the engine's incremental text equals decoding its tokens;
//  - each adapter answers at least 90% of its prompts correctly (finished with <|im_end|>, stripped text equals
//    the expected answer) and the base model under 10% (the adapters do the work).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "core/json.h"
#include "engine/generate.h"

namespace ls {
namespace {

const std::string kDemo = std::string(LS_SOURCE_DIR) + "/models/demo";
const char* const kAdapters[] = {"calc", "reverse", "sql", "upper"};

std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r"), e = s.find_last_not_of(" \t\n\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

struct Case {
  std::string adapter;
  const Json* prompt;
  bool base;  // the base-model reference of this prompt
};

TEST(DemoModel, AdaptersDoTheirTasksAndMatchTransformers) {
  ServedModelOptions mo;
  mo.model = kDemo + "/base";
  auto served = ServedModel::load(mo);
  ASSERT_TRUE(served.is_ok()) << served.status().to_string();
  const PromptCodec& codec = (*served)->codec();
  EngineOptions eo;
  eo.max_loras = 4;
  eo.kv_cache_bytes = 256 << 20;
  auto engine = Engine::create(**served, eo);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();

  std::vector<Json> evals;
  std::vector<Case> cases;
  std::vector<EngineRequest> requests;
  for (const char* name : kAdapters) {
    ASSERT_TRUE((*engine)->add_adapter(name, kDemo + "/adapters/" + name).is_ok());
    evals.push_back(read_json_file(kDemo + "/eval/" + name + ".json").value());
  }
  for (int32_t a = 0; a < 4; ++a) {
    const Json& eval = evals[a];
    ASSERT_EQ(eval.at("prompts").size(), 50u);
    for (const Json& p : eval.at("prompts")) {
      const std::string prompt = p.at("prompt").get<std::string>();
      EXPECT_EQ(codec.render_user_message(prompt).value(), p.at("chat_text").get<std::string>());
      const std::vector<int32_t> ids = codec.encode(prompt, true).value();
      EXPECT_EQ(ids, p.at("prompt_ids").get<std::vector<int32_t>>()) << prompt;
      for (bool base : {false, true}) {
        cases.push_back({kAdapters[a], &p, base});
        EngineRequest r;
        r.prompt = ids;
        r.adapter = base ? "" : kAdapters[a];
        r.params.stop.max_new_tokens = eval.at("max_new_tokens").get<int32_t>();
        requests.push_back(std::move(r));
      }
    }
  }
  (*engine)->start();
  auto generated = generate_all(**engine, std::move(requests));
  ASSERT_TRUE(generated.is_ok()) << generated.status().to_string();
  std::vector<std::vector<int32_t>> outputs;
  for (const Generation& g : generated.value()) outputs.push_back(g.tokens);

  std::map<std::string, int> adapter_correct, base_correct;
  int mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Json& ref = c.prompt->at(c.base ? "base" : "adapter");
    const std::vector<int32_t>& ours = outputs[i];
    if (ours != ref.at("ids").get<std::vector<int32_t>>()) {
      ++mismatches;
      ADD_FAILURE() << c.adapter << (c.base ? " (base)" : "") << ": \"" << c.prompt->at("prompt").get<std::string>()
                    << "\" differs from the transformers+peft reference (its smallest top-2 margin "
                    << ref.at("min_margin").get<double>() << ")";
    }
    const std::string text = codec.decode(ours).value();
    EXPECT_EQ(text, ref.at("text").get<std::string>());
    EXPECT_EQ(generated.value()[i].text, text) << "the engine's incremental text differs from decoding its tokens";
    const bool finished = !ours.empty() && std::find(codec.stop_ids().begin(), codec.stop_ids().end(), ours.back()) !=
                                               codec.stop_ids().end();
    const bool correct = finished && strip(text) == c.prompt->at("expected").get<std::string>();
    (c.base ? base_correct : adapter_correct)[c.adapter] += correct;
  }
  EXPECT_EQ(mismatches, 0);
  for (const char* name : kAdapters) {
    std::printf("%-8s adapter %2d/50 correct, base %2d/50\n", name, adapter_correct[name], base_correct[name]);
    EXPECT_GE(adapter_correct[name], 45) << name << " adapter below 90%";
    EXPECT_LT(base_correct[name], 5) << name << ": the base model alone scores 10% or more";
  }
}

}  // namespace
}  // namespace ls
