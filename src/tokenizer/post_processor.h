// post_processor.h: tokenizer.json "post_processor" (TemplateProcessing, ByteLevel, BertProcessing,
// RobertaProcessing, Sequence) reduced to what one sequence needs: the special tokens it gets when
// add_special_tokens is on, and (for offsets) ByteLevel's trim_offsets. Pairs are not encoded here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <memory>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/alignment.h"

namespace ls {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Rewrites the ids of one encoded sequence; called only when add_special_tokens is on.
  virtual void process(std::vector<int32_t>& ids) const = 0;
  // The same with offsets (encode_with_offsets): added special tokens get (0, 0); ByteLevel and Roberta
  // processors with trim_offsets drop leading and trailing spaces from each token's offsets. token_text: an
  // id's vocabulary string.
  virtual void process_with_offsets(std::vector<int32_t>& ids, std::vector<Offsets>& offsets,
                                    const std::function<std::string(int32_t)>& token_text) const = 0;
};

Result<std::unique_ptr<PostProcessor>> make_post_processor(const Json& config);

}  // namespace ls
