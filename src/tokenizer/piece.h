// piece.h: Piece, one span of the input as it moves through the pipeline (added-token split, normalizer,
// pre-tokenizers, model), and the split helpers every pre-tokenizer shares. This mirrors the splits of
// Hugging Face's PreTokenizedString; offsets are kept only when a caller asks for them (Piece::tracked).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "tokenizer/alignment.h"

namespace ls {

struct Piece {
  std::string text;
  int32_t added_id = -1;   // >= 0: an added token, already final; later stages leave it alone
  bool at_origin = false;  // starts at byte 0 of the original input (Metaspace prepend_scheme "first")
  bool raw_bytes = false;  // ByteLevel's byte -> character mapping is left to the model (faster)
  // Offsets (encode_with_offsets only): the original range of every byte of text. For an added token, the
  // range of the input span it matched.
  bool tracked = false;
  Alignment align;
};

// How a split treats the matched delimiters (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Result<SplitBehavior> parse_split_behavior(const Json& obj, std::string_view key);

// A span of a piece's text and whether it matched the pattern.
struct Span {
  size_t start;
  size_t end;
  bool is_match;
};

// Appends the sub-piece of bytes [start, end) of piece (its flags and, when tracked, its alignment).
void emit_sub_piece(const Piece& piece, size_t start, size_t end, std::vector<Piece>& out);

// Applies behavior to spans (which tile the piece's text) and appends the non-empty sub-pieces to out.
void split_piece(const Piece& piece, const std::vector<Span>& spans, SplitBehavior behavior,
                 std::vector<Piece>& out);

// Spans of text where each character satisfying pred is a match of its own (Hugging Face's char patterns).
void char_spans(std::string_view text, const std::function<bool(char32_t)>& pred, std::vector<Span>& spans);

// Runs fn on every piece that is not an added token, replacing it with the pieces fn appends (empty ones
// dropped); added-token pieces pass through.
Status for_each_split(std::vector<Piece>& pieces,
                      const std::function<Status(Piece&, std::vector<Piece>&)>& fn);

}  // namespace ls
