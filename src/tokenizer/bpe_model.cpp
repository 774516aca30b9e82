// bpe_model.cpp: loading the BPE model from JSON and encoding pieces with it.
#include "tokenizer/bpe_model.h"

#include <atomic>
#include <cstdio>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

constexpr size_t kCacheMaxWordBytes = 256;  // Hugging Face caches words shorter than this
constexpr size_t kCacheCapacity = 16384;

// Per-thread word caches, one per model (by uid, never by address, so a freed model cannot alias a new one).
struct ThreadCaches {
  using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringViewHash, std::equal_to<>>;
  std::unordered_map<uint64_t, WordCache> by_model;

  WordCache& for_model(uint64_t uid) {
    if (by_model.size() > 16 && !by_model.count(uid)) by_model.clear();
    return by_model[uid];
  }
};

ThreadCaches& thread_caches() {
  thread_local ThreadCaches caches;
  return caches;
}

std::atomic<uint64_t> next_cache_uid{1};

Result<int32_t> parse_id(const Json& value, const std::string& token) {
  if (!value.is_number_integer() && !value.is_number_unsigned()) {
    return invalid_argument("vocab id of \"" + token + "\" must be an integer");
  }
  const int64_t id = value.get<int64_t>();
  if (id < 0 || id > INT32_MAX - 1) return invalid_argument("vocab id of \"" + token + "\" is out of range");
  return static_cast<int32_t>(id);
}

}  // namespace

Result<std::unique_ptr<BpeModel>> BpeModel::from_json(const Json& config) {
  if (!config.is_object()) return invalid_argument("model must be an object");
  LS_ASSIGN_OR_RETURN(const std::string type, optional_string(config, "type", "BPE"));
  if (type != "BPE") return unsupported("unsupported model type \"" + type + "\"");
  // Dropout is for training; 0 behaves like null (no merge is ever skipped), anything else is refused.
  if (const Json* dropout = find_field(config, "dropout"); dropout && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return unsupported("BPE dropout must be null (got " + dropout->dump() + ")");
  }
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->cache_uid_ = next_cache_uid.fetch_add(1);
  const Json* vocab = find_field(config, "vocab");
  if (!vocab || !vocab->is_object()) return invalid_argument("BPE model needs a \"vocab\" object");
  LS_RETURN_IF_ERROR(model->load_vocab(*vocab));

  if (const Json* unk = find_field(config, "unk_token")) {
    if (!unk->is_string()) return invalid_argument("field \"unk_token\" must be a string");
    model->unk_token_ = unk->get<std::string>();
    model->has_unk_ = true;
    model->unk_id_ = model->vocab_.find(model->unk_token_);
  }
  LS_ASSIGN_OR_RETURN(model->fuse_unk_, optional_bool(config, "fuse_unk", false));
  LS_ASSIGN_OR_RETURN(model->byte_fallback_, optional_bool(config, "byte_fallback", false));
  LS_ASSIGN_OR_RETURN(model->ignore_merges_, optional_bool(config, "ignore_merges", false));
  LS_ASSIGN_OR_RETURN(model->prefix_, optional_string(config, "continuing_subword_prefix", ""));
  LS_ASSIGN_OR_RETURN(model->suffix_, optional_string(config, "end_of_word_suffix", ""));
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    model->byte_fallback_ids_[b] = model->vocab_.find(name);
  }
  const Json* merges = find_field(config, "merges");
  if (merges) {
    if (!merges->is_array()) return invalid_argument("BPE \"merges\" must be an array");
    LS_RETURN_IF_ERROR(model->load_merges(*merges));
  }
  return model;
}

Status BpeModel::load_vocab(const Json& vocab) {
  tokens_.reserve(vocab.size());
  int32_t max_id = -1;
  std::vector<int32_t> ids;
  ids.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    LS_ASSIGN_OR_RETURN(const int32_t id, parse_id(it.value(), it.key()));
    vocab_.insert(it.key(), id);
    tokens_.push_back(it.key());
    ids.push_back(id);
    max_id = std::max(max_id, id);
  }
  const bool dense = max_id < 0 || static_cast<size_t>(max_id) <= 2 * tokens_.size() + 1024;
  if (dense) dense_id_to_index_.assign(static_cast<size_t>(max_id + 1), -1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (dense) {
      dense_id_to_index_[ids[i]] = static_cast<int32_t>(i);
    } else {
      sparse_id_to_index_[ids[i]] = static_cast<int32_t>(i);
    }
  }
  return Status::ok();
}

Status BpeModel::load_merges(const Json& merges) {
  std::string merged;
  int32_t rank = 0;
  for (const Json& m : merges) {
    std::string a, b;
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;
      const size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
        return invalid_argument("BPE merge " + std::to_string(rank + 1) + " is not two tokens: \"" + line + "\"");
      }
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return invalid_argument("BPE merge " + std::to_string(rank + 1) + " must be \"a b\" or [\"a\", \"b\"]");
    }
    const int32_t a_id = vocab_.find(a), b_id = vocab_.find(b);
    if (a_id < 0) return invalid_argument("BPE merge token \"" + a + "\" is not in the vocab");
    if (b_id < 0) return invalid_argument("BPE merge token \"" + b + "\" is not in the vocab");
    if (b.size() < prefix_.size()) return invalid_argument("BPE merge token \"" + b + "\" is shorter than the prefix");
    merged.assign(a).append(b, prefix_.size(), std::string::npos);
    const int32_t new_id = vocab_.find(merged);
    if (new_id < 0) return invalid_argument("BPE merge result \"" + merged + "\" is not in the vocab");
    merges_.insert(a_id, b_id, MergeValue{rank, new_id});
    ++rank;
  }
  return Status::ok();
}

void BpeModel::enable_raw_bytes() {
  raw_enabled_ = true;
  std::string bytes;
  for (const std::string& token : tokens_) {
    bytes.clear();
    if (byte_level::decode_to_bytes(token, bytes)) raw_vocab_.insert(bytes, vocab_.find(token));
  }
  for (int b = 0; b < 256; ++b) raw_byte_ids_[b] = vocab_.find(byte_level::byte_to_utf8(static_cast<uint8_t>(b)));
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0) return nullptr;
  int32_t index = -1;
  if (!dense_id_to_index_.empty() || sparse_id_to_index_.empty()) {
    if (static_cast<size_t>(id) < dense_id_to_index_.size()) index = dense_id_to_index_[id];
  } else if (auto it = sparse_id_to_index_.find(id); it != sparse_id_to_index_.end()) {
    index = it->second;
  }
  return index < 0 ? nullptr : &tokens_[index];
}

Status BpeModel::tokenize(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out) const {
  raw_bytes = raw_bytes && raw_enabled_;
  if (ignore_merges_) {
    const int32_t id = raw_bytes ? raw_vocab_.find(piece) : vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      return Status::ok();
    }
  }
  if (piece.size() >= kCacheMaxWordBytes) return merge_word(piece, raw_bytes, out);
  auto& cache = thread_caches().for_model(cache_uid_);
  if (auto it = cache.find(piece); it != cache.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return Status::ok();
  }
  const size_t first = out.size();
  LS_RETURN_IF_ERROR(merge_word(piece, raw_bytes, out));
  if (cache.size() >= kCacheCapacity) cache.clear();
  cache.emplace(std::string(piece), std::vector<int32_t>(out.begin() + first, out.end()));
  return Status::ok();
}

Status BpeModel::tokenize_with_offsets(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out,
                                      std::vector<std::pair<uint32_t, uint32_t>>& spans) const {
  raw_bytes = raw_bytes && raw_enabled_;
  if (ignore_merges_) {
    const int32_t id = raw_bytes ? raw_vocab_.find(piece) : vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      spans.emplace_back(0, static_cast<uint32_t>(piece.size()));
      return Status::ok();
    }
  }
  return merge_word(piece, raw_bytes, out, &spans);
}

}  // namespace ls
