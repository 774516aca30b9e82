// generation_job.cpp: submitting a request's sequences and accumulating their updates.
#include "server/generation_job.h"

namespace ls::server {

void SequenceOutput::append(const RequestUpdate& u) {
  tokens.insert(tokens.end(), u.tokens.begin(), u.tokens.end());
  if (!u.prompt_tokens.empty()) prompt_tokens = u.prompt_tokens;
  text += u.text;
  prompt_len = u.prompt_len;
  generated = u.generated;
  seed = u.seed;
  num_preemptions = u.num_preemptions;
  times = u.times;
  if (u.finished) {
    finished = true;
    reason = u.reason;
    stop_string = u.stop_string;
    stop_token = u.stop_token;
    error = u.error;
  }
}

double SequenceOutput::cumulative_logprob() const {
  double sum = 0;
  for (const TokenInfo& t : tokens) sum += t.logprob;
  return sum;
}

Result<std::shared_ptr<GenerationJob>> GenerationJob::submit(Engine& engine, std::vector<EngineRequest> requests,
                                                             const std::function<void()>& wake) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  streams.reserve(requests.size());
  for (EngineRequest& request : requests) {
    auto stream = engine.submit(std::move(request), wake);
    if (!stream.is_ok()) {
      for (auto& s : streams) s->cancel();
      return stream.status();
    }
    streams.push_back(std::move(stream).value());
  }
  return std::make_shared<GenerationJob>(std::move(streams));
}

GenerationJob::GenerationJob(std::vector<std::shared_ptr<RequestStream>> streams)
    : streams_(std::move(streams)), outputs_(streams_.size()) {}

GenerationJob::~GenerationJob() { cancel(); }

bool GenerationJob::drain(const std::function<void(size_t, const RequestUpdate&)>& on_update) {
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (outputs_[i].finished) continue;
    while (auto update = streams_[i]->take()) {
      if (on_update) on_update(i, *update);
      outputs_[i].append(*update);
      if (update->finished) break;
    }
  }
  return finished();
}

bool GenerationJob::finished() const {
  for (const SequenceOutput& o : outputs_)
    if (!o.finished) return false;
  return true;
}

void GenerationJob::cancel() {
  for (size_t i = 0; i < streams_.size(); ++i)
    if (!outputs_[i].finished) streams_[i]->cancel();
}

}  // namespace ls::server
