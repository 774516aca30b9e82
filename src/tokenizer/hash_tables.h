// hash_tables.h: the two open-addressing maps on the encode hot path: StringIdMap (token text -> id, keys
// kept in one arena) and PairMap (pair of ids -> merge rank and merged id). Both are built once at load and
// only read afterwards, so lookups from many threads need no lock.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace ls {

uint64_t hash_bytes(std::string_view s);

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Transparent hash for unordered containers keyed by std::string and looked up by string_view.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return hash_bytes(s); }
};

class StringIdMap {
 public:
  // Inserts or overwrites key.
  void insert(std::string_view key, int32_t id);
  // The id of key, or -1.
  int32_t find(std::string_view key) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t length = 0;
    int32_t id = -1;  // -1: empty slot
  };
  void grow();
  size_t probe(std::string_view key, uint64_t hash) const;

  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
};

struct MergeValue {
  int32_t rank = -1;  // -1: no merge
  int32_t new_id = -1;
};

class PairMap {
 public:
  void insert(int32_t a, int32_t b, MergeValue value);  // overwrites like a Rust HashMap collect
  MergeValue find(int32_t a, int32_t b) const {
    if (slots_.empty()) return {};
    const uint64_t key = make_key(a, b);
    size_t i = mix64(key) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.value.rank < 0) return {};
      if (s.key == key) return s.value;
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = 0;
    MergeValue value;
  };
  static uint64_t make_key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace ls
