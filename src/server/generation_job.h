// generation_job.h: GenerationJob, the engine requests behind one HTTP request (n or best_of sequences) and
// what each has produced so far (SequenceOutput). The route's ResponseSource drains it whenever the connection
// is woken; dropping or cancelling a job cancels every sequence still running, so the engine frees its KV
// blocks at the next step.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/request.h"
#include "engine/request_stream.h"

namespace ls::server {

// One sequence's output so far, and once finished, how it ended.
struct SequenceOutput {
  std::vector<TokenInfo> tokens;
  std::vector<TokenInfo> prompt_tokens;  // with prompt_logprobs: prompt[1..]
  std::string text;                      // the concatenated RequestUpdate::text
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string stop_string;
  int32_t stop_token = -1;
  Status error;
  int32_t prompt_len = 0, generated = 0, num_preemptions = 0;
  uint64_t seed = 0;
  RequestTimes times;

  void append(const RequestUpdate& update);
  // Sum of the generated tokens' logprobs (the best_of ranking).
  double cumulative_logprob() const;
};

class GenerationJob {
 public:
  // Submits the requests, each with `wake` as its notify. If the engine refuses one, those already submitted
  // are cancelled and the refusal is returned.
  static Result<std::shared_ptr<GenerationJob>> submit(Engine& engine, std::vector<EngineRequest> requests,
                                                       const std::function<void()>& wake);
  // A job over streams created elsewhere (tests fabricate updates through RequestStream::push).
  explicit GenerationJob(std::vector<std::shared_ptr<RequestStream>> streams);
  ~GenerationJob();
  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  size_t size() const { return streams_.size(); }
  // Takes every ready update: on_update(sequence index, update) is called before the update is appended to
  // outputs(). Returns true once every sequence has finished.
  bool drain(const std::function<void(size_t, const RequestUpdate&)>& on_update);
  bool finished() const;
  const std::vector<SequenceOutput>& outputs() const { return outputs_; }
  // Aborts every sequence still running.
  void cancel();

 private:
  std::vector<std::shared_ptr<RequestStream>> streams_;
  std::vector<SequenceOutput> outputs_;
};

}  // namespace ls::server
