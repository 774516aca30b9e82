// bpe_merge.cpp: BpeModel's word encoding: characters (or bytes) to initial symbols with unk and byte
// fallback handling, then merges applied lowest rank first over a linked list of symbols.
#include <queue>

#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

struct Merge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};
struct MergeOrder {  // the heap's top is the lowest rank, then the leftmost position
  bool operator()(const Merge& a, const Merge& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool removed;
};

}  // namespace

Status BpeModel::merge_word(std::string_view piece, bool raw_bytes, std::vector<int32_t>& out,
                            std::vector<std::pair<uint32_t, uint32_t>>* spans) const {
  thread_local std::vector<int32_t> ids;
  ids.clear();
  // With spans: the byte range of each initial symbol. As in `tokenizers` (Word::add), a symbol's range is
  // the running sum of the byte lengths before it, in symbol order.
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint32_t cursor = 0;
  auto push = [&](int32_t id, size_t len) {
    ids.push_back(id);
    if (spans) ranges.emplace_back(cursor, cursor + static_cast<uint32_t>(len));
    cursor += static_cast<uint32_t>(len);
  };
  int32_t pending_unk = -1;  // an unk symbol not yet added (it absorbs following unknowns with fuse_unk)
  size_t unk_len = 0;
  std::string unit_with_affixes;
  const bool affixes = !prefix_.empty() || !suffix_.empty();
  size_t i = 0;
  while (i < piece.size()) {
    std::string_view unit;
    size_t len;
    if (raw_bytes) {
      len = 1;
      unit = byte_level::byte_to_utf8(static_cast<uint8_t>(piece[i]));
    } else {
      len = unicode::lead_length(static_cast<unsigned char>(piece[i]));
      if (i + len > piece.size()) len = piece.size() - i;
      unit = piece.substr(i, len);
    }
    const bool is_first = i == 0;
    i += len;
    const bool is_last = i >= piece.size();
    int32_t id;
    if (affixes) {
      unit_with_affixes.clear();
      if (!is_first) unit_with_affixes.append(prefix_);
      unit_with_affixes.append(unit);
      if (is_last) unit_with_affixes.append(suffix_);
      unit = unit_with_affixes;
      id = vocab_.find(unit);
    } else if (raw_bytes) {
      id = raw_byte_ids_[static_cast<uint8_t>(piece[i - 1])];
    } else {
      id = vocab_.find(unit);
    }
    if (id >= 0) {
      if (pending_unk >= 0) {
        push(pending_unk, unk_len);
        pending_unk = -1;
      }
      push(id, len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : unit) all = all && byte_fallback_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : unit) push(byte_fallback_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (has_unk_) {
      if (unk_id_ < 0) return invalid_argument("unk_token \"" + unk_token_ + "\" is not in the vocab");
      if (pending_unk >= 0 && !fuse_unk_) {
        push(pending_unk, unk_len);
        pending_unk = -1;
      }
      unk_len = pending_unk >= 0 ? unk_len + len : len;
      pending_unk = unk_id_;
    }
  }
  if (pending_unk >= 0) push(pending_unk, unk_len);
  if (!spans) {
    merge_all(ids);
    out.insert(out.end(), ids.begin(), ids.end());
    return Status::ok();
  }
  std::vector<int32_t> starts;
  merge_all(ids, &starts);
  for (size_t k = 0; k < starts.size(); ++k) {
    const size_t last = (k + 1 < starts.size() ? static_cast<size_t>(starts[k + 1]) : ranges.size()) - 1;
    spans->emplace_back(ranges[static_cast<size_t>(starts[k])].first, ranges[last].second);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  return Status::ok();
}

void BpeModel::merge_all(std::vector<int32_t>& ids, std::vector<int32_t>* starts) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2 || merges_.size() == 0) {
    if (starts)
      for (int32_t k = 0; k < n; ++k) starts->push_back(k);
    return;
  }
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Merge> heap_storage;
  symbols.resize(n);
  for (int32_t k = 0; k < n; ++k) symbols[k] = {ids[k], k - 1, k + 1 < n ? k + 1 : -1, false};
  heap_storage.clear();
  std::priority_queue<Merge, std::vector<Merge>, MergeOrder> queue(MergeOrder{}, std::move(heap_storage));
  for (int32_t k = 0; k + 1 < n; ++k) {
    const MergeValue m = merges_.find(symbols[k].id, symbols[k + 1].id);
    if (m.rank >= 0) queue.push({m.rank, k, m.new_id});
  }
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.removed || cur.next < 0) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = symbols[next_pos];
    // Skip stale entries: the pair at this position must still merge into the same id.
    const MergeValue now = merges_.find(cur.id, right.id);
    if (now.rank < 0 || now.new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.next = right.next;
    symbols[next_pos].removed = true;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      const MergeValue m = merges_.find(symbols[cur.prev].id, cur.id);
      if (m.rank >= 0) queue.push({m.rank, cur.prev, m.new_id});
    }
    if (cur.next >= 0) {
      const MergeValue m = merges_.find(cur.id, symbols[cur.next].id);
      if (m.rank >= 0) queue.push({m.rank, top.pos, m.new_id});
    }
  }
  ids.clear();
  for (int32_t k = 0; k >= 0 && k < n; k = symbols[k].next) {
    ids.push_back(symbols[k].id);
    if (starts) starts->push_back(k);
  }
}

}  // namespace ls
