// post_processor.h: tokenizer.json "post_processor" (TemplateProcessing, ByteLevel, BertProcessing,
// RobertaProcessing, Sequence) reduced to what ids need: the special tokens a single sequence gets when
// add_special_tokens is on. Pairs are not encoded here.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ls {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one encoded sequence; called only when add_special_tokens is on.
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

Result<std::unique_ptr<PostProcessor>> make_post_processor(const Json& config);

}  // namespace ls
