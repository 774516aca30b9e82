// tgi_routes.cpp: POST /generate, /generate_stream, / (compat) and /invocations (SageMaker): validate, submit
// the request's sequences, and TgiSource, the ResponseSource that turns the job's updates into a
// GenerateResponse (an array on the compat route) or a TGI event stream.
#include <memory>

#include "server/api.h"
#include "server/generation_job.h"
#include "server/tgi_request.h"
#include "server/tgi_response.h"

namespace ls::server {
namespace {

const char* failure_kind(const ApiError& e) {
  if (e.status == 429) return "overloaded";
  if (e.status == 422 || e.status == 400) return "validation";
  if (e.status == 500) return "incomplete";
  return "generation";
}

class TgiSource : public ResponseSource {
 public:
  TgiSource(const ApiModel& model, ServerCounters& counters, TgiRequest request, bool array,
            std::shared_ptr<GenerationJob> job, FlightToken flight, double start, double submitted)
      : model_(model),
        counters_(counters),
        r_(std::move(request)),
        array_(array),
        job_(std::move(job)),
        flight_(std::move(flight)),
        start_(start),
        submitted_(submitted),
        renderer_(r_, model.tokenizer()) {}

  bool streaming() const override { return r_.stream; }

  HttpResponse head() const override {
    HttpResponse h;
    h.content_type = "text/event-stream";
    h.headers = tgi_headers(r_, model_, nullptr, start_, submitted_);
    h.headers.emplace_back("Cache-Control", "no-cache");
    h.headers.emplace_back("X-Accel-Buffering", "no");
    return h;
  }

  bool poll(std::string& out) override {
    const bool done = job_->drain([&](size_t, const RequestUpdate& u) {
      if (r_.stream) renderer_.render(u, out);
    });
    if (done && !counted_) finish();
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

  std::string keep_alive() const override { return ":\n\n"; }

 private:
  void finish() {
    counted_ = true;
    const auto error = tgi_job_error(job_->outputs());
    if (error) {
      counters_.failure(failure_kind(*error));
      response_ = error_response(ApiFamily::kTgi, *error);
      return;
    }
    counters_.success();
    if (r_.stream) return;
    OJson body = tgi_generate_response(r_, job_->outputs(), model_.tokenizer());
    if (array_) body = OJson::array({std::move(body)});
    response_.body = dump_json(body);
    const SequenceOutput& best = job_->outputs()[tgi_best_sequence(job_->outputs())];
    response_.headers = tgi_headers(r_, model_, &best, start_, submitted_);
  }

  const ApiModel& model_;
  ServerCounters& counters_;
  TgiRequest r_;
  bool array_;
  std::shared_ptr<GenerationJob> job_;
  FlightToken flight_;
  double start_, submitted_;
  TgiStreamRenderer renderer_;
  HttpResponse response_;
  bool counted_ = false;
};

}  // namespace

RouteResult Api::tgi_generate(const HttpRequest& request, const RouteContext& context, const std::string& mode) {
  const double start = engine_clock_seconds();
  counters_.request();
  auto fail = [&](const ApiError& e) -> RouteResult {
    counters_.failure(failure_kind(e));
    return error_response(ApiFamily::kTgi, e);
  };
  auto body = parse_body(request.body);
  if (!body.is_ok()) return fail(malformed_body_error(ApiFamily::kTgi, body.status()));
  bool stream = mode == "stream";
  if (mode == "compat") {
    auto s = Fields(body.value()).boolean("stream");
    if (!s.is_ok()) return fail(to_api_error(ApiFamily::kTgi, s.status()));
    stream = s.value().value_or(false);
  }
  auto parsed = parse_tgi_request(body.value(), model_, stream);
  if (!parsed.is_ok()) return fail(to_api_error(ApiFamily::kTgi, parsed.status()));
  auto flight = take_flight();
  if (!flight) return fail(to_api_error(ApiFamily::kTgi, resource_exhausted("too many requests in flight")));
  auto job = GenerationJob::submit(engine_, tgi_engine_requests(parsed.value()), context.wake);
  if (!job.is_ok()) return fail(to_api_error(ApiFamily::kTgi, job.status()));
  const double submitted = engine_clock_seconds();
  return std::make_shared<TgiSource>(model_, counters_, std::move(parsed).value(), mode == "compat",
                                     std::move(job).value(), std::move(*flight), start, submitted);
}

// SageMaker: the body is a TGI compat request, an OpenAI chat request or an OpenAI completion request.
RouteResult Api::invocations(const HttpRequest& request, const RouteContext& context) {
  auto body = parse_body(request.body);
  if (body.is_ok() && body.value().contains("messages")) return openai_generate(request, context, true);
  if (body.is_ok() && body.value().contains("prompt") && !body.value().contains("inputs"))
    return openai_generate(request, context, false);
  return tgi_generate(request, context, "compat");
}

}  // namespace ls::server
