// tokenizer.cpp: loading tokenizer.json into the pipeline and running it: added-token split, normalizer,
// pre-tokenizer, BPE model, post-processor; and decoding through the decoder chain.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <unordered_set>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/piece.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

// Builds an optional component: absent or null gives nullptr; errors are prefixed with the component key.
template <typename T, typename MakeFn>
Status load_component(const Json& root, const char* key, MakeFn make, std::unique_ptr<T>& out) {
  const Json* config = find_field(root, key);
  if (!config) return Status::ok();
  auto result = make(*config);
  if (!result.is_ok()) return result.status().with_context(key);
  out = std::move(result).value();
  return Status::ok();
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::load(const std::string& path) {
  auto json = read_json_file(path);
  if (!json.is_ok()) return json.status();
  auto tokenizer = from_json(json.value());
  if (!tokenizer.is_ok()) return tokenizer.status().with_context(path);
  return tokenizer;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::load_from_json(std::string_view json_text) {
  LS_ASSIGN_OR_RETURN(const Json json, parse_json(json_text, "tokenizer.json"));
  return from_json(json);
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_json(const Json& root) {
  if (!root.is_object()) return invalid_argument("tokenizer.json must be a JSON object");
  LS_ASSIGN_OR_RETURN(const std::string version, optional_string(root, "version", "1.0"));
  if (version != "1.0") return unsupported("unknown tokenizer.json version \"" + version + "\"");
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const Json* model = find_field(root, "model");
  if (!model) return invalid_argument("missing field \"model\"");
  auto bpe = BpeModel::from_json(*model);
  if (!bpe.is_ok()) return bpe.status().with_context("model");
  t->model_ = std::move(bpe).value();
  LS_RETURN_IF_ERROR(load_component(root, "normalizer", make_normalizer, t->normalizer_));
  LS_RETURN_IF_ERROR(load_component(root, "pre_tokenizer", make_pre_tokenizer, t->pre_tokenizer_));
  LS_RETURN_IF_ERROR(load_component(root, "post_processor", make_post_processor, t->post_processor_));
  LS_RETURN_IF_ERROR(load_component(root, "decoder", make_decoder, t->decoder_));
  if (t->pre_tokenizer_ && t->pre_tokenizer_->defer_byte_mapping()) t->model_->enable_raw_bytes();

  t->added_ = std::make_unique<AddedVocabulary>();
  if (const Json* list = find_field(root, "added_tokens")) {
    auto tokens = parse_added_tokens(*list);
    if (!tokens.is_ok()) return tokens.status().with_context("added_tokens");
    Status s = t->added_->add_tokens(tokens.value(), *t->model_, t->normalizer_.get());
    if (!s.is_ok()) return s.with_context("added_tokens");
  }
  return t;
}

Status Tokenizer::split_pieces(Piece whole, std::vector<Piece>& pieces) const {
  if (added_->has_raw_tokens()) {
    added_->split(whole, /*normalized=*/false, pieces);
  } else if (!whole.text.empty()) {
    pieces.push_back(std::move(whole));
  }
  if (normalizer_ || added_->has_normalized_tokens()) {
    LS_RETURN_IF_ERROR(for_each_split(pieces, [&](Piece& piece, std::vector<Piece>& out) -> Status {
      if (normalizer_ && piece.tracked) {
        LS_RETURN_IF_ERROR(normalizer_->normalize_aligned(piece.text, piece.at_origin, piece.align));
      } else if (normalizer_) {
        LS_RETURN_IF_ERROR(normalizer_->normalize(piece.text, piece.at_origin));
      }
      if (added_->has_normalized_tokens()) {
        added_->split(piece, /*normalized=*/true, out);
      } else {
        out.push_back(std::move(piece));
      }
      return Status::ok();
    }));
  }
  if (pre_tokenizer_) LS_RETURN_IF_ERROR(pre_tokenizer_->pre_tokenize(pieces));
  return Status::ok();
}

Status Tokenizer::encode_piece_list(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<Piece> pieces;
  Piece whole;
  whole.text.assign(text);
  whole.at_origin = true;
  LS_RETURN_IF_ERROR(split_pieces(std::move(whole), pieces));
  for (const Piece& piece : pieces) {
    if (piece.added_id >= 0) {
      ids.push_back(piece.added_id);
    } else {
      LS_RETURN_IF_ERROR(model_->tokenize(piece.text, piece.raw_bytes, ids));
    }
  }
  return Status::ok();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (unicode::is_valid_utf8(text)) {
    LS_RETURN_IF_ERROR(encode_piece_list(text, ids));
  } else {
    LS_RETURN_IF_ERROR(encode_piece_list(unicode::to_valid_utf8_lossy(text), ids));
  }
  if (add_special_tokens && post_processor_) post_processor_->process(ids);
  return ids;
}

Result<Encoding> Tokenizer::encode_with_offsets(std::string_view input, bool add_special_tokens) const {
  const std::string repaired = unicode::is_valid_utf8(input) ? std::string() : unicode::to_valid_utf8_lossy(input);
  const std::string_view text = repaired.empty() ? input : std::string_view(repaired);
  std::vector<Piece> pieces;
  Piece whole;
  whole.text.assign(text);
  whole.at_origin = true;
  whole.tracked = true;
  whole.align = identity_alignment(text, 0);
  LS_RETURN_IF_ERROR(split_pieces(std::move(whole), pieces));
  Encoding enc;
  std::vector<std::pair<uint32_t, uint32_t>> spans;
  for (const Piece& piece : pieces) {
    if (piece.added_id >= 0) {
      enc.ids.push_back(piece.added_id);
      enc.offsets.push_back(expand_alignment(piece.align, 0, piece.align.bytes.size()));
      continue;
    }
    spans.clear();
    LS_RETURN_IF_ERROR(model_->tokenize_with_offsets(piece.text, piece.raw_bytes, enc.ids, spans));
    for (const auto& [start, end] : spans) enc.offsets.push_back(expand_alignment(piece.align, start, end));
  }
  if (add_special_tokens && post_processor_) {
    // The post-processor works in characters, as Python's `tokenizers` does (trim_offsets moves offsets by
    // whole characters): convert, process, convert back.
    std::vector<uint32_t> char_of_byte(text.size() + 1, 0), byte_of_char;
    for (size_t i = 0; i < text.size();) {
      const size_t len = std::max<size_t>(1, unicode::lead_length(static_cast<unsigned char>(text[i])));
      for (size_t k = 0; k < len && i + k <= text.size(); ++k) char_of_byte[i + k] = static_cast<uint32_t>(byte_of_char.size());
      byte_of_char.push_back(static_cast<uint32_t>(i));
      i += len;
    }
    char_of_byte[text.size()] = static_cast<uint32_t>(byte_of_char.size());
    byte_of_char.push_back(static_cast<uint32_t>(text.size()));
    for (auto& [start, end] : enc.offsets) {
      start = char_of_byte[std::min<size_t>(start, text.size())];
      end = char_of_byte[std::min<size_t>(end, text.size())];
    }
    post_processor_->process_with_offsets(enc.ids, enc.offsets, [this](int32_t id) {
      return id_to_token(id).value_or(std::string());
    });
    for (auto& [start, end] : enc.offsets) {
      start = byte_of_char[std::min<size_t>(start, byte_of_char.size() - 1)];
      end = byte_of_char[std::min<size_t>(end, byte_of_char.size() - 1)];
    }
  }
  return enc;
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string* token = added_->id_to_token(id);
    if (!token) token = model_->id_to_token(id);
    if (!token) continue;
    if (skip_special_tokens && added_->is_special(*token)) continue;
    tokens.push_back(*token);
  }
  if (!decoder_) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined.push_back(' ');
      joined.append(tokens[i]);
    }
    return joined;
  }
  LS_RETURN_IF_ERROR(decoder_->decode_chain(tokens));
  std::string joined;
  for (const std::string& t : tokens) joined.append(t);
  return joined;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  const int32_t id = added_->token_to_id(token);
  return id >= 0 ? id : model_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* t = added_->id_to_token(id);
  if (!t) t = model_->id_to_token(id);
  if (!t) return std::nullopt;
  return *t;
}

bool Tokenizer::is_special_id(int32_t id) const {
  const std::string* t = added_->id_to_token(id);
  if (!t) t = model_->id_to_token(id);
  return t && added_->is_special(*t);
}

size_t Tokenizer::vocab_size() const {
  return model_->vocab_size() + added_->count_not_in(*model_);
}

}  // namespace ls
