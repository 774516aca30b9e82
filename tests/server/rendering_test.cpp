// rendering_test.cpp: response bodies and event streams rendered from fabricated RequestUpdates (no engine):
// TGI GenerateResponse with details/top_tokens/best_of/prefill, TGI SSE framing ("data:{json}", final event
// with generated_text and details, error events), OpenAI completion and chat objects with usage and both
// logprob formats, and the vLLM chunk stream ("data: {json}", role chunk, usage chunk, [DONE]).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "demo_api.h"
#include "engine/prompt_codec.h"
#include "server/openai_response.h"
#include "server/tgi_response.h"

namespace ls::server {
namespace {

const Tokenizer& tokenizer() {
  static const PromptCodec* codec = [] {
    auto c = PromptCodec::load(testing::demo_model_dir());
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return new PromptCodec(std::move(c).value());
  }();
  return codec->tokenizer();
}

TokenInfo token(int32_t id, const std::string& text, float logprob, std::vector<std::pair<int32_t, float>> top = {}) {
  TokenInfo t;
  t.id = id;
  t.text = text;
  t.logprob = logprob;
  t.top = std::move(top);
  return t;
}

RequestUpdate update(std::vector<TokenInfo> tokens, const std::string& text, int32_t generated) {
  RequestUpdate u;
  u.tokens = std::move(tokens);
  u.text = text;
  u.prompt_len = 3;
  u.generated = generated;
  u.seed = 42;
  return u;
}

RequestUpdate finish(RequestUpdate u, FinishReason reason) {
  u.finished = true;
  u.reason = reason;
  return u;
}

// The JSON objects of an SSE body, checking each event's framing.
std::vector<Json> events(const std::string& body, const std::string& prefix, bool* saw_done = nullptr) {
  std::vector<Json> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "event without a blank line after it";
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(event.rfind(prefix, 0), 0u) << event;
    const std::string data = event.substr(prefix.size());
    if (data == "[DONE]") {
      if (saw_done) *saw_done = true;
      continue;
    }
    auto json = parse_json(data, "event");
    EXPECT_TRUE(json.is_ok()) << data;
    if (json.is_ok()) out.push_back(json.value());
  }
  return out;
}

TgiRequest tgi_request() {
  TgiRequest r;
  r.inputs = "abc";
  r.prompt = {10, 11, 12};
  r.details = true;
  r.params.logprobs = 0;
  return r;
}

TEST(TgiRendering, GenerateResponseWithDetails) {
  TgiRequest r = tgi_request();
  r.top_n_tokens = 1;
  r.decoder_input_details = true;
  r.params.prompt_logprobs = 0;
  SequenceOutput o;
  o.append(update({token(72, "H", -0.5f, {{72, -0.5f}}), token(2, "", -0.25f, {{2, -0.25f}})}, "H", 2));
  RequestUpdate last = finish(update({}, "", 2), FinishReason::kEos);
  o.append(last);
  o.prompt_tokens = {token(11, "", -1.5f), token(12, "", -2.0f)};
  const OJson body = tgi_generate_response(r, {o}, tokenizer());
  EXPECT_EQ(body["generated_text"], "H");
  const OJson& d = body["details"];
  EXPECT_EQ(d["finish_reason"], "eos_token");
  EXPECT_EQ(d["generated_tokens"], 2);
  EXPECT_TRUE(d["seed"].is_null()) << "greedy requests report no seed";
  EXPECT_EQ(d["prompt_tokens"], 3);
  ASSERT_EQ(d["prefill"].size(), 3u);
  EXPECT_TRUE(d["prefill"][0]["logprob"].is_null());
  EXPECT_EQ(d["prefill"][2]["logprob"], -2.0);
  ASSERT_EQ(d["tokens"].size(), 2u);
  EXPECT_EQ(d["tokens"][1]["special"], true);
  EXPECT_EQ(d["tokens"][1]["text"], "<|im_end|>") << "special tokens show their text in details";
  EXPECT_EQ(d["tokens"][0]["logprob"], -0.5);
  ASSERT_EQ(d["top_tokens"].size(), 2u);
  EXPECT_EQ(d["top_tokens"][0][0]["id"], 72);
  EXPECT_FALSE(d.contains("best_of_sequences"));
}

TEST(TgiRendering, BestOfReturnsTheHighestCumulativeLogprob) {
  TgiRequest r = tgi_request();
  r.best_of = 2;
  r.sampling = true;
  r.return_full_text = true;
  SequenceOutput a, b;
  a.append(finish(update({token(72, "x", -3.0f)}, "x", 1), FinishReason::kLength));
  b.append(finish(update({token(73, "y", -1.0f)}, "y", 1), FinishReason::kLength));
  const OJson body = tgi_generate_response(r, {a, b}, tokenizer());
  EXPECT_EQ(body["generated_text"], "abcy");
  ASSERT_EQ(body["details"]["best_of_sequences"].size(), 1u);
  EXPECT_EQ(body["details"]["best_of_sequences"][0]["generated_text"], "abcx");
  EXPECT_EQ(body["details"]["seed"], 42);
}

TEST(TgiRendering, StreamEventsAndFinalEvent) {
  TgiRequest r = tgi_request();
  r.stream = true;
  TgiStreamRenderer renderer(r, tokenizer());
  std::string out;
  renderer.render(update({token(72, "He", -0.5f), token(73, "l", -0.1f)}, "Hel", 2), out);
  renderer.render(finish(update({token(74, "lo", -0.2f)}, "lo", 3), FinishReason::kStopSequence), out);
  EXPECT_EQ(out.rfind("data:{", 0), 0u) << "TGI events have no space after data:";
  EXPECT_EQ(out.find("[DONE]"), std::string::npos);
  const auto ev = events(out, "data:");
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0]["index"], 1);
  EXPECT_EQ(ev[0]["token"]["text"], "He");
  EXPECT_TRUE(ev[0]["generated_text"].is_null());
  EXPECT_TRUE(ev[0]["details"].is_null());
  EXPECT_EQ(ev[2]["index"], 3);
  EXPECT_EQ(ev[2]["generated_text"], "Hello");
  EXPECT_EQ(ev[2]["details"]["finish_reason"], "stop_sequence");
  EXPECT_EQ(ev[2]["details"]["generated_tokens"], 3);
  EXPECT_EQ(ev[2]["details"]["input_length"], 3);
  EXPECT_EQ(ev[2]["details"]["prompt_tokens"], 3);
}

TEST(TgiRendering, StreamErrorEvents) {
  TgiRequest r = tgi_request();
  r.stream = true;
  TgiStreamRenderer renderer(r, tokenizer());
  std::string out;
  renderer.render(update({token(72, "He", -0.5f)}, "He", 1), out);
  RequestUpdate fail = finish(update({}, "", 1), FinishReason::kError);
  fail.error = internal_error("device lost");
  renderer.render(fail, out);
  const auto ev = events(out, "data:");
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1]["error_type"], "generation");
  EXPECT_EQ(ev[1]["error"], "Request failed during generation: device lost");
  TgiStreamRenderer aborted(r, tokenizer());
  out.clear();
  aborted.render(finish(update({}, "", 0), FinishReason::kAbort), out);
  EXPECT_EQ(out, "data:{\"error\":\"Incomplete generation stream\",\"error_type\":\"incomplete_generation_stream\"}\n\n");
}

TEST(TgiRendering, JobErrors) {
  SequenceOutput failed;
  RequestUpdate u = finish(update({}, "", 0), FinishReason::kError);
  u.error = internal_error("boom");
  failed.append(u);
  auto e = tgi_job_error({failed});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, 424);
  EXPECT_EQ(e->type, "generation");
  SequenceOutput aborted;
  aborted.append(finish(update({}, "", 0), FinishReason::kAbort));
  e = tgi_job_error({aborted});
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, 500);
  EXPECT_EQ(e->type, "incomplete_generation");
}

OpenAiRequest openai_request(OpenAiKind kind) {
  OpenAiRequest r;
  r.kind = kind;
  r.model_name = "calc";
  r.prompts = {{10, 11, 12}};
  r.echo_texts = {""};
  return r;
}

TEST(OpenAiRendering, CompletionWithLogprobsAndUsage) {
  OpenAiRequest r = openai_request(OpenAiKind::kCompletion);
  r.logprobs = 1;
  SequenceOutput o;
  o.append(update({token(72, "H", -0.5f, {{72, -0.5f}, {73, -1.0f}})}, "H", 1));
  RequestUpdate last = finish(update({token(73, "i", -1.0f, {{74, -0.9f}})}, "i", 2), FinishReason::kStopSequence);
  last.stop_string = "!";
  o.append(last);
  const OJson body = completion_response(r, {o}, tokenizer(), "cmpl-1", 7);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "calc");
  EXPECT_EQ(body["created"], 7);
  const OJson& c = body["choices"][0];
  EXPECT_EQ(c["text"], "Hi");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(c["stop_reason"], "!");
  EXPECT_EQ(c["logprobs"]["token_logprobs"], OJson::array({-0.5, -1.0}));
  EXPECT_EQ(c["logprobs"]["text_offset"], OJson::array({0, 1}));
  ASSERT_EQ(c["logprobs"]["top_logprobs"].size(), 2u);
  EXPECT_EQ(c["logprobs"]["top_logprobs"][1].size(), 2u) << "the top entry plus the chosen token";
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(body["usage"]["completion_tokens"], 2);
  EXPECT_EQ(body["usage"]["total_tokens"], 5);
}

TEST(OpenAiRendering, ChatWithLogprobs) {
  OpenAiRequest r = openai_request(OpenAiKind::kChat);
  r.logprobs = 1;
  SequenceOutput o;
  o.append(finish(update({token(72, "H", -std::numeric_limits<float>::infinity(), {{72, -0.5f}})}, "H", 1),
                  FinishReason::kEos));
  const OJson body = chat_response(r, {o}, tokenizer(), "chatcmpl-1", 7);
  const OJson& c = body["choices"][0];
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], "H");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_TRUE(c["stop_reason"].is_null());
  EXPECT_EQ(c["logprobs"]["content"][0]["logprob"], -9999.0) << "-inf is written as vLLM writes it";
  const std::string text = tokenizer().decode(std::vector<int32_t>{72}, false).value();
  OJson bytes = OJson::array();
  for (unsigned char b : text) bytes.push_back(static_cast<int>(b));
  EXPECT_EQ(c["logprobs"]["content"][0]["token"], text);
  EXPECT_EQ(c["logprobs"]["content"][0]["bytes"], bytes);
  EXPECT_EQ(c["logprobs"]["content"][0]["top_logprobs"].size(), 1u);
}

TEST(OpenAiRendering, BestOfPicksTheBestSequencesPerPrompt) {
  OpenAiRequest r = openai_request(OpenAiKind::kCompletion);
  r.prompts = {{1}, {2}};
  r.echo_texts = {"", ""};
  r.n = 1;
  r.best_of = 2;
  std::vector<SequenceOutput> outs(4);
  const float lp[] = {-3.0f, -1.0f, -0.5f, -2.0f};
  for (int i = 0; i < 4; ++i)
    outs[i].append(finish(update({token(72, std::to_string(i), lp[i])}, std::to_string(i), 1), FinishReason::kLength));
  EXPECT_EQ(openai_choice_sequences(r, outs), (std::vector<size_t>{1, 2}));
}

TEST(OpenAiRendering, ChatStreamChunksUsageAndDone) {
  OpenAiRequest r = openai_request(OpenAiKind::kChat);
  r.stream = true;
  r.include_usage = true;
  OpenAiStreamRenderer renderer(r, tokenizer(), "chatcmpl-9", 5);
  std::string out = renderer.start();
  renderer.render(0, update({token(72, "He", -0.5f)}, "He", 1), out);
  renderer.render(0, update({token(73, "", -0.1f)}, "", 2), out);  // held back: no chunk
  RequestUpdate last = finish(update({token(2, "", -0.1f)}, "llo", 3), FinishReason::kEos);
  renderer.render(0, last, out);
  SequenceOutput o;
  o.append(last);
  out += renderer.finish({o});
  EXPECT_EQ(out.rfind("data: {", 0), 0u) << "vLLM events have a space after data:";
  bool done = false;
  const auto ev = events(out, "data: ", &done);
  EXPECT_TRUE(done);
  EXPECT_EQ(out.substr(out.size() - 14), "data: [DONE]\n\n");
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0]["object"], "chat.completion.chunk");
  EXPECT_EQ(ev[0]["choices"][0]["delta"], (OJson{{"role", "assistant"}, {"content", ""}}));
  EXPECT_EQ(ev[1]["choices"][0]["delta"]["content"], "He");
  EXPECT_TRUE(ev[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(ev[2]["choices"][0]["delta"]["content"], "llo");
  EXPECT_EQ(ev[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(ev[3]["choices"].empty());
  EXPECT_EQ(ev[3]["usage"]["completion_tokens"], 3);
  EXPECT_EQ(ev[3]["usage"]["prompt_tokens"], 3);
  for (const Json& e : ev) EXPECT_EQ(e["id"], "chatcmpl-9");
}

TEST(OpenAiRendering, CompletionStreamEchoAndError) {
  OpenAiRequest r = openai_request(OpenAiKind::kCompletion);
  r.stream = true;
  r.echo = true;
  r.echo_texts = {"abc"};
  OpenAiStreamRenderer renderer(r, tokenizer(), "cmpl-9", 5);
  std::string out = renderer.start();
  EXPECT_EQ(out, "");
  renderer.render(0, update({token(72, "d", -0.5f)}, "d", 1), out);
  RequestUpdate fail = finish(update({}, "", 1), FinishReason::kError);
  fail.error = internal_error("device lost");
  renderer.render(0, fail, out);
  out += renderer.finish({});
  bool done = false;
  const auto ev = events(out, "data: ", &done);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0]["choices"][0]["text"], "abcd") << "echo leads the first chunk";
  EXPECT_EQ(ev[1]["error"]["type"], "InternalServerError");
  EXPECT_EQ(ev[1]["error"]["code"], 500);
  EXPECT_TRUE(done) << "[DONE] follows an in-stream error";
}

}  // namespace
}  // namespace ls::server
