// request_stream.cpp: the coalescing single-slot channel between the engine and one request's reader.
#include "engine/request_stream.h"

namespace ls {
namespace {

// Appends `next` to `into` (both from the same request, `into` older).
void merge(RequestUpdate& into, RequestUpdate&& next) {
  for (TokenInfo& t : next.tokens) into.tokens.push_back(std::move(t));
  into.text += next.text;
  if (into.prompt_tokens.empty()) into.prompt_tokens = std::move(next.prompt_tokens);
  into.finished = next.finished;
  into.reason = next.reason;
  into.stop_string = std::move(next.stop_string);
  into.stop_token = next.stop_token;
  into.error = std::move(next.error);
  into.prompt_len = next.prompt_len;
  into.generated = next.generated;
  into.seed = next.seed;
  into.num_preemptions = next.num_preemptions;
  into.times = next.times;
}

}  // namespace

void RequestStream::set_notify(std::function<void()> notify) {
  std::lock_guard<std::mutex> lock(mu_);
  notify_ = std::move(notify);
}

std::optional<RequestUpdate> RequestStream::take() {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<RequestUpdate> out = std::move(pending_);
  pending_.reset();
  return out;
}

RequestUpdate RequestStream::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return pending_.has_value(); });
  RequestUpdate out = std::move(*pending_);
  pending_.reset();
  return out;
}

void RequestStream::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

bool RequestStream::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

void RequestStream::push(RequestUpdate update) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_) {
      merge(*pending_, std::move(update));
    } else {
      pending_ = std::move(update);
    }
    notify = notify_;
  }
  cv_.notify_all();
  if (notify) notify();
}

}  // namespace ls
