// hash_tables.cpp: hashing, probing and growth for StringIdMap and PairMap.
#include "tokenizer/hash_tables.h"

#include "core/check.h"

namespace ls {

uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (s.size() * 0x100000001B3ULL);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = mix64(h ^ w);
  }
  uint64_t tail = 0;
  if (i < s.size()) {
    std::memcpy(&tail, s.data() + i, s.size() - i);
    h = mix64(h ^ tail ^ 0xA5A5A5A5ULL);
  }
  return h == 0 ? 1 : h;
}

size_t StringIdMap::probe(std::string_view key, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (true) {
    const Slot& s = slots_[i];
    if (s.id < 0) return i;
    if (s.hash == hash && s.length == key.size() &&
        std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0) {
      return i;
    }
    i = (i + 1) & mask;
  }
}

void StringIdMap::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = s.hash & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void StringIdMap::insert(std::string_view key, int32_t id) {
  LS_CHECK(id >= 0) << "StringIdMap ids are non-negative";
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t hash = hash_bytes(key);
  const size_t i = probe(key, hash);
  Slot& s = slots_[i];
  if (s.id < 0) {
    s.hash = hash;
    s.offset = static_cast<uint32_t>(arena_.size());
    s.length = static_cast<uint32_t>(key.size());
    arena_.append(key);
    ++size_;
  }
  s.id = id;
}

int32_t StringIdMap::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  return slots_[probe(key, hash_bytes(key))].id;
}

void PairMap::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.value.rank < 0) continue;
    size_t i = mix64(s.key) & mask_;
    while (slots_[i].value.rank >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void PairMap::insert(int32_t a, int32_t b, MergeValue value) {
  LS_CHECK(value.rank >= 0) << "merge ranks are non-negative";
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = make_key(a, b);
  size_t i = mix64(key) & mask_;
  while (slots_[i].value.rank >= 0 && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].value.rank < 0) ++size_;
  slots_[i].key = key;
  slots_[i].value = value;
}

}  // namespace ls
