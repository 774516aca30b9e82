// openai_routes.cpp: POST /v1/completions and /v1/chat/completions: validate, submit prompts x best_of
// sequences, and OpenAiSource, the ResponseSource that renders the job as one response or vLLM's chunk stream.
#include <memory>

#include "server/api.h"
#include "server/generation_job.h"
#include "server/openai_request.h"
#include "server/openai_response.h"

namespace ls::server {
namespace {

class OpenAiSource : public ResponseSource {
 public:
  OpenAiSource(const ApiModel& model, ServerCounters& counters, OpenAiRequest request,
               std::shared_ptr<GenerationJob> job, FlightToken flight)
      : model_(model),
        counters_(counters),
        r_(std::move(request)),
        job_(std::move(job)),
        flight_(std::move(flight)),
        id_(openai_response_id(r_.kind)),
        created_(unix_time_now()),
        renderer_(r_, model.tokenizer(), id_, created_) {}

  bool streaming() const override { return r_.stream; }

  HttpResponse head() const override {
    HttpResponse h;
    h.content_type = "text/event-stream; charset=utf-8";
    h.headers.emplace_back("Cache-Control", "no-cache");
    h.headers.emplace_back("X-Accel-Buffering", "no");
    return h;
  }

  bool poll(std::string& out) override {
    if (r_.stream && !started_) {
      started_ = true;
      out += renderer_.start();
    }
    const bool done = job_->drain([&](size_t i, const RequestUpdate& u) {
      if (r_.stream) renderer_.render(i, u, out);
    });
    if (done && !counted_) finish(out);
    return done;
  }

  HttpResponse take_response() override { return std::move(response_); }

  void cancel() override {
    job_->cancel();
    if (!counted_) {
      counted_ = true;
      counters_.failure("dropped");
    }
  }

 private:
  void finish(std::string& out) {
    counted_ = true;
    const auto error = openai_job_error(job_->outputs());
    if (error) {
      counters_.failure("generation");
    } else {
      counters_.success();
    }
    if (r_.stream) {
      out += renderer_.finish(job_->outputs());
      return;
    }
    if (error) {
      response_ = error_response(ApiFamily::kOpenAi, *error);
      return;
    }
    const OJson body = r_.kind == OpenAiKind::kChat
                           ? chat_response(r_, job_->outputs(), model_.tokenizer(), id_, created_)
                           : completion_response(r_, job_->outputs(), model_.tokenizer(), id_, created_);
    response_.body = dump_json(body);
  }

  const ApiModel& model_;
  ServerCounters& counters_;
  OpenAiRequest r_;
  std::shared_ptr<GenerationJob> job_;
  FlightToken flight_;
  std::string id_;
  int64_t created_;
  OpenAiStreamRenderer renderer_;
  HttpResponse response_;
  bool started_ = false;
  bool counted_ = false;
};

}  // namespace

RouteResult Api::openai_generate(const HttpRequest& request, const RouteContext& context, bool chat) {
  counters_.request();
  auto fail = [&](const ApiError& e, const char* kind) -> RouteResult {
    counters_.failure(kind);
    return error_response(ApiFamily::kOpenAi, e);
  };
  auto body = parse_body(request.body);
  if (!body.is_ok()) return fail(malformed_body_error(ApiFamily::kOpenAi, body.status()), "validation");
  auto parsed = chat ? parse_chat_request(body.value(), model_) : parse_completion_request(body.value(), model_);
  if (!parsed.is_ok()) {
    const bool model_missing = parsed.status().code() == ErrorCode::kNotFound;
    return fail(to_api_error(ApiFamily::kOpenAi, parsed.status(), model_missing ? "model" : ""), "validation");
  }
  auto flight = take_flight();
  if (!flight) return fail(to_api_error(ApiFamily::kOpenAi, resource_exhausted("too many requests in flight")),
                           "overloaded");
  auto job = GenerationJob::submit(engine_, openai_engine_requests(parsed.value()), context.wake);
  if (!job.is_ok()) {
    const ApiError e = to_api_error(ApiFamily::kOpenAi, job.status(),
                                    job.status().code() == ErrorCode::kNotFound ? "model" : "");
    return fail(e, e.status == 429 ? "overloaded" : "validation");
  }
  return std::make_shared<OpenAiSource>(model_, counters_, std::move(parsed).value(), std::move(job).value(),
                                        std::move(*flight));
}

}  // namespace ls::server
