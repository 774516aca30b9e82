// generate.cpp: submit-all, wait-all over request streams.
#include "engine/generate.h"

namespace ls {

Result<std::vector<Generation>> generate_all(Engine& engine, std::vector<EngineRequest> requests) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (EngineRequest& r : requests) {
    auto stream = engine.submit(std::move(r));
    if (!stream.is_ok()) {
      for (auto& s : streams) s->cancel();
      return stream.status();
    }
    streams.push_back(std::move(stream).value());
  }
  std::vector<Generation> out(streams.size());
  for (size_t i = 0; i < streams.size(); ++i) {
    Generation& g = out[i];
    for (;;) {
      RequestUpdate u = streams[i]->wait();
      for (TokenInfo& t : u.tokens) {
        g.tokens.push_back(t.id);
        g.token_info.push_back(std::move(t));
      }
      g.text += u.text;
      for (TokenInfo& t : u.prompt_tokens) g.prompt_tokens.push_back(std::move(t));
      if (!u.finished) continue;
      g.reason = u.reason;
      g.error = u.error;
      g.stop_string = u.stop_string;
      g.stop_token = u.stop_token;
      g.seed = u.seed;
      g.num_preemptions = u.num_preemptions;
      break;
    }
  }
  return out;
}

}  // namespace ls
