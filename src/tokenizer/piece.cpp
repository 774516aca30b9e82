// piece.cpp: split behaviors over spans, character-pattern spans, and the per-piece split loop.
#include "tokenizer/piece.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace ls {

Result<SplitBehavior> parse_split_behavior(const Json& obj, std::string_view key) {
  LS_ASSIGN_OR_RETURN(const std::string name, required_string(obj, key));
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return unsupported("unsupported split behavior \"" + name + "\"");
}

namespace {

// The (span, keep) list after applying behavior, as Hugging Face's NormalizedString::split computes it.
std::vector<Span> apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> out;  // is_match here means "remove"
  out.reserve(spans.size());
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) out.push_back({s.start, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      out = spans;
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back({s.start, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().start = it->start;
        } else {
          out.push_back({it->start, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  return out;
}

}  // namespace

void emit_sub_piece(const Piece& piece, size_t start, size_t end, std::vector<Piece>& out) {
  Piece& p = out.emplace_back();
  p.text.assign(piece.text, start, end - start);
  p.at_origin = piece.at_origin && start == 0;
  p.raw_bytes = piece.raw_bytes;
  if (piece.tracked) {
    p.tracked = true;
    p.align = slice_alignment(piece.align, start, end);
  }
}

void split_piece(const Piece& piece, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>& out) {
  if (behavior == SplitBehavior::kIsolated || behavior == SplitBehavior::kRemoved) {
    // The common case, without the intermediate vector.
    for (const Span& s : spans) {
      if (s.end <= s.start || (behavior == SplitBehavior::kRemoved && s.is_match)) continue;
      emit_sub_piece(piece, s.start, s.end, out);
    }
    return;
  }
  for (const Span& s : apply_behavior(spans, behavior)) {
    if (s.is_match || s.end <= s.start) continue;
    emit_sub_piece(piece, s.start, s.end, out);
  }
}

void char_spans(std::string_view text, const std::function<bool(char32_t)>& pred, std::vector<Span>& spans) {
  spans.clear();
  size_t last_offset = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t len;
    const char32_t c = unicode::decode(text, i, &len);
    if (pred(c)) {
      if (last_offset < i) spans.push_back({last_offset, i, false});
      spans.push_back({i, i + len, true});
      last_offset = i + len;
    }
    i += len;
  }
  if (i > last_offset) spans.push_back({last_offset, i, false});
}

Status for_each_split(std::vector<Piece>& pieces,
                      const std::function<Status(Piece&, std::vector<Piece>&)>& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& piece : pieces) {
    if (piece.added_id >= 0) {
      out.push_back(std::move(piece));
      continue;
    }
    const size_t first = out.size();
    LS_RETURN_IF_ERROR(fn(piece, out));
    // Drop the empty pieces fn produced, keeping order.
    size_t keep = first;
    for (size_t i = first; i < out.size(); ++i) {
      if (out[i].text.empty()) continue;
      if (keep != i) out[keep] = std::move(out[i]);
      ++keep;
    }
    out.resize(keep);
  }
  pieces = std::move(out);
  return Status::ok();
}

}  // namespace ls
