// decoder.h: tokenizer.json "decoder" objects (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
// BPEDecoder, Sequence). Each rewrites the list of token strings as Hugging Face's decode_chain does; the
// tokenizer joins the result.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ls {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual Status decode_chain(std::vector<std::string>& tokens) const = 0;
};

Result<std::unique_ptr<Decoder>> make_decoder(const Json& config);

}  // namespace ls
