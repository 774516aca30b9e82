// demo_model_test.cpp: the demo model (models/demo, made by tools/demo_model) on the CPU engine. For each adapter's
// 50 held-out task prompts (models/demo/eval/NAME.json):
//  - our tokenizer and chat template turn the prompt into exactly the text and ids transformers used;
//  - greedy outputs, for the adapter and for the base model, equal the transformers+peft float32 references
//    token for token (all 4 x 50 x 2 sequences run together in mixed-adapter batches);
//  - each adapter answers at least 90% of its prompts correctly (finished with <|im_end|>, stripped text equals
//    the expected answer) and the base model under 10% (the adapters do the work).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "core/json.h"
#include "engine/offline_batch.h"
#include "engine/prompt_codec.h"
#include "lora/lora_slots.h"

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
  auto backend = make_cpu_backend();
  auto model = Transformer::load(kDemo + "/base", *backend);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto codec = PromptCodec::load(kDemo + "/base");
  ASSERT_TRUE(codec.is_ok()) << codec.status().to_string();
  LoraSlots slots = LoraSlots::create(*backend, (*model)->config(), 4).value();

  std::vector<Json> evals;
  std::vector<Case> cases;
  std::vector<GenerationRequest> requests;
  for (int32_t slot = 0; slot < 4; ++slot) {
    auto adapter = load_lora_adapter(kDemo + "/adapters/" + kAdapters[slot], (*model)->config());
    ASSERT_TRUE(adapter.is_ok()) << adapter.status().to_string();
    ASSERT_TRUE(slots.load(slot, adapter.value()).is_ok());
    evals.push_back(read_json_file(kDemo + "/eval/" + kAdapters[slot] + ".json").value());
  }
  for (int32_t slot = 0; slot < 4; ++slot) {
    const Json& eval = evals[slot];
    ASSERT_EQ(eval.at("prompts").size(), 50u);
    for (const Json& p : eval.at("prompts")) {
      const std::string prompt = p.at("prompt").get<std::string>();
      EXPECT_EQ(codec->render_user_message(prompt).value(), p.at("chat_text").get<std::string>());
      const std::vector<int32_t> ids = codec->encode(prompt, true).value();
      EXPECT_EQ(ids, p.at("prompt_ids").get<std::vector<int32_t>>()) << prompt;
      for (bool base : {false, true}) {
        cases.push_back({kAdapters[slot], &p, base});
        requests.push_back({ids, base ? -1 : slot, eval.at("max_new_tokens").get<int32_t>(), codec->stop_ids()});
      }
    }
  }
  auto outputs = generate_greedy_batch(**model, requests, &slots);
  ASSERT_TRUE(outputs.is_ok()) << outputs.status().to_string();

  std::map<std::string, int> adapter_correct, base_correct;
  int mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Json& ref = c.prompt->at(c.base ? "base" : "adapter");
    const std::vector<int32_t>& ours = outputs.value()[i];
    if (ours != ref.at("ids").get<std::vector<int32_t>>()) {
      ++mismatches;
      ADD_FAILURE() << c.adapter << (c.base ? " (base)" : "") << ": \"" << c.prompt->at("prompt").get<std::string>()
                    << "\" differs from the transformers+peft reference (its smallest top-2 margin "
                    << ref.at("min_margin").get<double>() << ")";
    }
    const std::string text = codec->decode(ours).value();
    EXPECT_EQ(text, ref.at("text").get<std::string>());
    const bool finished = !ours.empty() && std::find(codec->stop_ids().begin(), codec->stop_ids().end(), ours.back()) !=
                                               codec->stop_ids().end();
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
