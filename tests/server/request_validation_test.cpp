// request_validation_test.cpp: the bad-input battery through the real routes (Api::handle over the demo model):
// every case gets its documented status, its family's error shape (TGI {error, error_type}; OpenAI
// {error: {message, type, param, code}}) and a message naming the problem; afterwards the server still
// answers a good request with the same output as before.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/json.h"
#include "demo_api.h"

namespace ls {
namespace {

using testing::DemoApi;
using testing::RouteReply;

struct BadCase {
  std::string path;
  std::string body;
  int status;
  std::string type;     // TGI error_type or OpenAI error.type
  std::string message;  // a substring of the message
};

std::string long_prompt(int words) {
  std::string s;
  for (int i = 0; i < words; ++i) s += "word ";
  return s;
}

const std::vector<BadCase>& tgi_cases() {
  static const std::vector<BadCase> cases = {
      {"/generate", "{bad json", 400, "validation", "not valid JSON"},
      {"/generate", "[1, 2]", 400, "validation", "must be a JSON object, got array"},
      {"/generate", "", 400, "validation", "body is empty"},
      {"/generate", "{\"inputs\": \"\xff\xfe\"}", 400, "validation", "not valid UTF-8"},
      {"/generate", "{}", 422, "validation", "missing field `inputs`"},
      {"/generate", R"({"inputs": 5})", 422, "validation", "`inputs` must be a string, got integer"},
      {"/generate", R"({"inputs": ""})", 422, "validation", "`inputs` cannot be empty"},
      {"/generate", R"({"inputs": "hi", "parameters": 3})", 422, "validation", "`parameters` must be an object"},
      {"/generate", R"({"inputs": "hi", "parameters": {"temperature": -1}})", 422, "validation",
       "`temperature` must be non-negative"},
      {"/generate", R"({"inputs": "hi", "parameters": {"temperature": "hot"}})", 422, "validation",
       "`parameters.temperature` must be a number, got string"},
      {"/generate", R"({"inputs": "hi", "parameters": {"repetition_penalty": 0}})", 422, "validation",
       "`repetition_penalty` must be strictly positive"},
      {"/generate", R"({"inputs": "hi", "parameters": {"frequency_penalty": 3}})", 422, "validation",
       "`frequency_penalty` must be >= -2.0 and <= 2.0"},
      {"/generate", R"({"inputs": "hi", "parameters": {"top_p": 0}})", 422, "validation", "`top_p` must be > 0.0"},
      {"/generate", R"({"inputs": "hi", "parameters": {"top_p": 1.5}})", 422, "validation", "`top_p` must be > 0.0"},
      {"/generate", R"({"inputs": "hi", "parameters": {"typical_p": 0}})", 422, "validation", "`typical_p` must be"},
      {"/generate", R"({"inputs": "hi", "parameters": {"top_k": 0}})", 422, "validation",
       "`top_k` must be strictly positive"},
      {"/generate", R"({"inputs": "hi", "parameters": {"top_k": 2.5}})", 422, "validation",
       "`parameters.top_k` must be an integer"},
      {"/generate", R"({"inputs": "hi", "parameters": {"max_new_tokens": 0}})", 422, "validation",
       "`max_new_tokens` must be strictly positive"},
      {"/generate", R"({"inputs": "hi", "parameters": {"max_new_tokens": 5000}})", 422, "validation",
       "`inputs` tokens + `max_new_tokens` must be <= 2048. Given: 1 `inputs` tokens and 5000 `max_new_tokens`"},
      {"/generate", R"({"inputs": "hi", "parameters": {"best_of": 3, "do_sample": true}})", 422, "validation",
       "`best_of` must be > 0 and <= 2. Given: 3"},
      {"/generate", R"({"inputs": "hi", "parameters": {"best_of": 2}})", 422, "validation",
       "you must use sampling when `best_of` is > 1"},
      {"/generate", R"({"inputs": "hi", "parameters": {"best_of": 2, "do_sample": true, "seed": 3}})", 422,
       "validation", "`seed` must not be set when `best_of` > 1"},
      {"/generate_stream", R"({"inputs": "hi", "parameters": {"best_of": 2, "do_sample": true}})", 422,
       "validation", "`best_of` != 1 is not supported when streaming tokens"},
      {"/generate", R"({"inputs": "hi", "parameters": {"stop": ["a", "b", "c", "d", "e"]}})", 422, "validation",
       "`stop` supports up to 4 stop sequences. Given: 5"},
      {"/generate", R"({"inputs": "hi", "parameters": {"stop": [""]}})", 422, "validation", "must not be empty"},
      {"/generate", R"({"inputs": "hi", "parameters": {"stop": "x"}})", 422, "validation",
       "`parameters.stop` must be a list of strings"},
      {"/generate", R"({"inputs": "hi", "parameters": {"truncate": 0}})", 422, "validation",
       "`truncate` must be strictly positive and less than 2047. Given: 0"},
      {"/generate", R"({"inputs": "hi", "parameters": {"top_n_tokens": 6}})", 422, "validation",
       "`top_n_tokens` must be >= 0 and <= 5. Given: 6"},
      {"/generate_stream", R"({"inputs": "hi", "parameters": {"decoder_input_details": true}})", 422, "validation",
       "`decoder_input_details` == true is not supported when streaming tokens"},
      {"/generate", R"({"inputs": "hi", "parameters": {"watermark": true}})", 422, "validation",
       "`watermark` is not supported"},
      {"/generate", R"({"inputs": "hi", "parameters": {"grammar": {"type": "regex", "value": "a+"}}})", 422,
       "validation", "grammar is not supported"},
      {"/generate", R"({"inputs": "hi", "parameters": {"adapter_id": "nope"}})", 422, "validation",
       "adapter `nope` was not found"},
      {"/generate", R"({"inputs": "hi", "parameters": {"adapter_id": "calc", "adapter_source": "pbase"}})", 422,
       "validation", "`adapter_source` \"pbase\" is not supported"},
      {"/generate", R"({"inputs": "hi", "parameters": {"merged_adapters": {"ids": ["calc"]}}})", 422, "validation",
       "`merged_adapters` is not supported"},
      {"/generate", R"({"inputs": "hi", "parameters": {"seed": -1}})", 422, "validation",
       "`parameters.seed` must be >= 0"},
      {"/generate", R"({"inputs": "hi", "parameters": {"return_k_alternatives": 0}})", 422, "validation",
       "`return_k_alternatives` must be strictly positive"},
      {"/generate", R"({"inputs": "hi", "parameters": {"response_format": {"type": "json_object"}}})", 422,
       "validation", "structured output"},
      {"/", R"({"inputs": "hi", "stream": "yes"})", 422, "validation", "`stream` must be a boolean"},
      {"/generate", "{\"inputs\": \"" + long_prompt(2100) + "\"}", 422, "validation",
       "`inputs` must have less than 2047 tokens. Given: "},
      {"/invocations", R"({"inputs": ""})", 422, "validation", "`inputs` cannot be empty"},
      {"/tokenize", R"({"parameters": {}})", 422, "validation", "missing field `inputs`"},
  };
  return cases;
}

const std::vector<BadCase>& openai_cases() {
  static const std::vector<BadCase> cases = {
      {"/v1/completions", "{bad", 400, "BadRequestError", "not valid JSON"},
      {"/v1/completions", R"({"model": "nope", "prompt": "hi"})", 404, "NotFoundError",
       "The model `nope` does not exist."},
      {"/v1/completions", R"({"model": "demo:nope", "prompt": "hi"})", 404, "NotFoundError", "does not exist"},
      {"/v1/completions", R"({"max_tokens": 4})", 400, "BadRequestError",
       "At least one of `prompt` or `prompt_embeds` must be set."},
      {"/v1/completions", R"({"prompt": {"a": 1}})", 400, "BadRequestError", "`prompt` must be a string"},
      {"/v1/completions", R"({"prompt": []})", 400, "BadRequestError", "`prompt` must not be an empty list"},
      {"/v1/completions", R"({"prompt": [1, 99999]})", 400, "BadRequestError", "Token id 99999 is out of vocabulary"},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 0})", 400, "BadRequestError",
       "max_tokens must be at least 1, got 0."},
      {"/v1/completions", R"({"prompt": "hi", "max_tokens": 5000})", 400, "BadRequestError",
       "This model's maximum context length is 2048 tokens. However, you requested 5001 tokens (1 in the messages, "
       "5000 in the completion). Please reduce the length of the messages or completion."},
      {"/v1/completions", R"({"prompt": "hi", "n": 0})", 400, "BadRequestError", "n must be at least 1, got 0."},
      {"/v1/completions", R"({"prompt": "hi", "n": 17})", 400, "BadRequestError", "n must be at most 16, got 17."},
      {"/v1/completions", R"({"prompt": "hi", "n": 3, "best_of": 2})", 400, "BadRequestError",
       "best_of must be greater than or equal to n"},
      {"/v1/completions", R"({"prompt": "hi", "temperature": -0.5})", 400, "BadRequestError",
       "temperature must be non-negative, got -0.5."},
      {"/v1/completions", R"({"prompt": "hi", "top_p": 0})", 400, "BadRequestError", "top_p must be in (0, 1], got 0.0."},
      {"/v1/completions", R"({"prompt": "hi", "top_k": -2})", 400, "BadRequestError",
       "top_k must be 0 or -1 (disable), or at least 1, got -2."},
      {"/v1/completions", R"({"prompt": "hi", "min_p": 2})", 400, "BadRequestError", "min_p must be in [0, 1], got 2.0."},
      {"/v1/completions", R"({"prompt": "hi", "presence_penalty": -3})", 400, "BadRequestError",
       "presence_penalty must be in [-2, 2]"},
      {"/v1/completions", R"({"prompt": "hi", "stream_options": {"include_usage": true}})", 400, "BadRequestError",
       "Stream options can only be defined when `stream=True`."},
      {"/v1/completions", R"({"prompt": "hi", "logprobs": -1})", 400, "BadRequestError",
       "`logprobs` must be a positive value."},
      {"/v1/completions", R"({"prompt": "hi", "logprobs": 21})", 400, "BadRequestError",
       "Requested sample logprobs of 21, which is greater than max allowed: 20"},
      {"/v1/completions", R"({"prompt": "hi", "response_format": {"type": "json_object"}})", 400, "BadRequestError",
       "response_format type \"json_object\" is not supported"},
      {"/v1/completions", R"({"prompt": "hi", "guided_json": {"type": "object"}})", 400, "BadRequestError",
       "`guided_json` is not supported"},
      {"/v1/completions", R"({"prompt": "hi", "logit_bias": {"5": 10}})", 400, "BadRequestError",
       "`logit_bias` is not supported"},
      {"/v1/completions", R"({"prompt": "hi", "suffix": "x"})", 400, "BadRequestError",
       "suffix is not currently supported"},
      {"/v1/completions",
       R"({"prompt": "hi", "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})", 400,
       "BadRequestError", "`stop` supports up to 16 sequences, got 17."},
      {"/v1/completions", R"({"prompt": "hi", "seed": "x"})", 400, "BadRequestError", "`seed` must be an integer"},
      {"/v1/chat/completions", R"({"model": "demo"})", 400, "BadRequestError", "`messages` is required"},
      {"/v1/chat/completions", R"({"messages": []})", 400, "BadRequestError", "`messages` must be a non-empty list"},
      {"/v1/chat/completions", R"({"messages": [{"content": "hi"}]})", 400, "BadRequestError",
       "`messages[0].role` is required"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})", 400,
       "BadRequestError", "content part type \"image_url\" is not supported"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2})", 400,
       "BadRequestError", "when using `top_logprobs`, `logprobs` must be set to true."},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]})",
       400, "BadRequestError", "\"auto\" tool choice requires --enable-auto-tool-choice"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "assistant", "content": "hi"}], "continue_final_message": true})", 400,
       "BadRequestError", "Cannot set both `continue_final_message` and `add_generation_prompt` to True."},
      {"/v1/chat/completions", R"({"model": "nope", "messages": [{"role": "user", "content": "hi"}]})", 404,
       "NotFoundError", "The model `nope` does not exist."},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 3000})",
       400, "BadRequestError", "This model's maximum context length is 2048 tokens."},
  };
  return cases;
}

void check_tgi(const BadCase& c, const RouteReply& r) {
  SCOPED_TRACE(c.path + " " + c.body.substr(0, 120));
  EXPECT_EQ(r.status, c.status) << r.body;
  auto body = parse_json(r.body, "reply");
  ASSERT_TRUE(body.is_ok()) << r.body;
  ASSERT_TRUE(body->is_object() && body->size() == 2) << r.body;
  ASSERT_TRUE((*body)["error"].is_string() && (*body)["error_type"].is_string()) << r.body;
  EXPECT_EQ((*body)["error_type"], c.type);
  EXPECT_NE((*body)["error"].get<std::string>().find(c.message), std::string::npos) << r.body;
  if (c.status == 422) {
    EXPECT_EQ((*body)["error"].get<std::string>().rfind("Input validation error: ", 0), 0u);
  }
}

void check_openai(const BadCase& c, const RouteReply& r) {
  SCOPED_TRACE(c.path + " " + c.body.substr(0, 120));
  EXPECT_EQ(r.status, c.status) << r.body;
  auto body = parse_json(r.body, "reply");
  ASSERT_TRUE(body.is_ok()) << r.body;
  ASSERT_TRUE(body->is_object() && body->contains("error") && (*body)["error"].is_object()) << r.body;
  const Json& e = (*body)["error"];
  EXPECT_EQ(e["type"], c.type);
  EXPECT_EQ(e["code"], c.status);
  ASSERT_TRUE(e.contains("param"));
  if (c.status == 404) {
    EXPECT_EQ(e["param"], "model");
  }
  EXPECT_NE(e["message"].get<std::string>().find(c.message), std::string::npos) << r.body;
}

std::string good_generation() {
  const RouteReply r = DemoApi::shared().call(
      "POST", "/generate", R"({"inputs": "def add(a, b):", "parameters": {"max_new_tokens": 12}})");
  EXPECT_EQ(r.status, 200) << r.body;
  return r.body;
}

TEST(RequestValidation, TgiBadInputsGetTheirStatusAndShape) {
  const std::string before = good_generation();
  for (const BadCase& c : tgi_cases()) check_tgi(c, DemoApi::shared().call("POST", c.path, c.body));
  EXPECT_EQ(good_generation(), before) << "the server's output changed after the bad inputs";
  EXPECT_GE(tgi_cases().size() + openai_cases().size(), 40u);
}

TEST(RequestValidation, OpenAiBadInputsGetTheirStatusAndShape) {
  for (const BadCase& c : openai_cases()) check_openai(c, DemoApi::shared().call("POST", c.path, c.body));
  // None of them reached the engine: its queues stay empty (stats are published after each step).
  const EngineStats stats = DemoApi::shared().engine().stats();
  EXPECT_EQ(stats.waiting, 0);
}

TEST(RequestValidation, UnknownRoutesAndMethods) {
  auto& api = DemoApi::shared();
  RouteReply r = api.call("GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no route for GET /nope"), std::string::npos);
  r = api.call("GET", "/generate");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow"), "POST");
  r = api.call("DELETE", "/v1/models");
  EXPECT_EQ(r.status, 405);
  EXPECT_NE(r.body.find("\"type\":\"MethodNotAllowed\""), std::string::npos) << r.body;
}

TEST(RequestValidation, UnknownFieldsAreAcceptedOnOpenAiRoutes) {
  const RouteReply r = DemoApi::shared().call(
      "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": 2, "some_vendor_field": {"a": 1}, "user": "u"})");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST(RequestValidation, ApiKeyGuardsGenerationAndModelRoutes) {
  server::ServerOptions options;
  options.api_keys = {"sekret"};
  testing::DemoApi guarded({}, options);
  // TGI routes: 401 with an empty body; OpenAI routes: {"error": "Unauthorized"}.
  RouteReply r = guarded.call("POST", "/generate", R"({"inputs": "hi"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, "");
  r = guarded.call("GET", "/v1/models");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, R"({"error":"Unauthorized"})");
  r = guarded.call("GET", "/v1/models", "", {{"authorization", "Bearer wrong"}});
  EXPECT_EQ(r.status, 401);
  r = guarded.call("GET", "/v1/models", "", {{"authorization", "Bearer sekret-and-more"}});
  EXPECT_EQ(r.status, 401);
  r = guarded.call("GET", "/v1/models", "", {{"authorization", "bearer sekret"}});
  EXPECT_EQ(r.status, 200) << r.body;
  r = guarded.call("POST", "/generate", R"({"inputs": "hi", "parameters": {"max_new_tokens": 1}})",
                   {{"authorization", "Bearer sekret"}});
  EXPECT_EQ(r.status, 200) << r.body;
  // Open routes.
  EXPECT_EQ(guarded.call("GET", "/health").status, 200);
  EXPECT_EQ(guarded.call("GET", "/metrics").status, 200);
  EXPECT_EQ(guarded.call("GET", "/info").status, 200);
}

}  // namespace
}  // namespace ls
