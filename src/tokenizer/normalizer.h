// normalizer.h: the Normalizer interface and the factory for tokenizer.json "normalizer" objects: NFC, NFD,
// NFKC, NFKD (utf8proc), Lowercase, Strip, StripAccents, Prepend, Replace, Nmt, ByteLevel and Sequence. An
// unknown type (Precompiled, BertNormalizer) is an error naming it.
#pragma once

#include <memory>
#include <string>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/alignment.h"

namespace ls {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites text (valid UTF-8) in place. at_origin tracks whether the first character still comes from
  // the original input's first byte; it becomes false when leading characters are deleted (Strip, or a
  // Replace by nothing), which is what Metaspace's prepend_scheme "first" looks at.
  virtual Status normalize(std::string& text, bool& at_origin) const = 0;
  // The same rewrite, keeping align (one entry per byte of text) in step as Hugging Face's NormalizedString
  // does, for offsets.
  virtual Status normalize_aligned(std::string& text, bool& at_origin, Alignment& align) const = 0;
};

Result<std::unique_ptr<Normalizer>> make_normalizer(const Json& config);

}  // namespace ls
