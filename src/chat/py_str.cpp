// py_str.cpp: code point conversion and the Python str operations that depend on code points.
#include "chat/py_str.h"

#include <algorithm>

#include <utf8proc.h>

namespace ls::chat {

namespace {

bool is_cased(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

// Python's full case mappings: utf8proc's simple mappings plus the SpecialCasing entries that expand.
void append_upper(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c);
  } else if (c == 0xDF) {
    out += U"SS";
  } else if (c >= 0xFB00 && c <= 0xFB06) {
    static const char32_t* const kLigatures[] = {U"FF", U"FI", U"FL", U"FFI", U"FFL", U"ST", U"ST"};
    out += kLigatures[c - 0xFB00];
  } else {
    out.push_back(static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))));
  }
}

void append_title(std::u32string& out, char32_t c) {
  if (c == 0xDF) {
    out += U"Ss";
  } else if (c >= 0xFB00 && c <= 0xFB06) {
    static const char32_t* const kLigatures[] = {U"Ff", U"Fi", U"Fl", U"Ffi", U"Ffl", U"St", U"St"};
    out += kLigatures[c - 0xFB00];
  } else if (c < 0x80) {
    out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c);
  } else {
    out.push_back(static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))));
  }
}

// Lowercases cps[i]; a capital sigma at the end of a word becomes the final form, as Python does.
void append_lower(std::u32string& out, const std::u32string& cps, size_t i) {
  const char32_t c = cps[i];
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
  } else if (c == 0x130) {
    out += U"i\u0307";
  } else if (c == 0x3A3) {
    const bool after_cased = i > 0 && is_cased(cps[i - 1]);
    const bool before_cased = i + 1 < cps.size() && is_cased(cps[i + 1]);
    out.push_back(after_cased && !before_cased ? 0x3C2 : 0x3C3);
  } else {
    out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
}

}  // namespace

std::u32string utf8_to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (unicode::valid_sequence_length(s, i) == 0) {
      out.push_back(unicode::kReplacementChar);
      ++i;
    } else {
      size_t n = 0;
      out.push_back(unicode::decode(s, i, &n));
      i += n;
    }
  }
  return out;
}

std::string u32_to_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(out, cp);
  return out;
}

bool py_isspace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x80) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  const std::u32string cps = utf8_to_u32(s);
  const std::u32string set = chars ? utf8_to_u32(*chars) : std::u32string();
  auto strip_me = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t begin = 0, end = cps.size();
  if (left)
    while (begin < end && strip_me(cps[begin])) ++begin;
  if (right)
    while (end > begin && strip_me(cps[end - 1])) --end;
  return u32_to_utf8(std::u32string_view(cps).substr(begin, end - begin));
}

std::vector<std::string> py_split(std::string_view s, const std::string* sep, long long maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<long long>(out.size()) < maxsplit) {
      const size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string cps = utf8_to_u32(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && py_isspace(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<long long>(out.size()) == maxsplit) {
      size_t end = cps.size();
      while (end > i && py_isspace(cps[end - 1])) --end;
      out.push_back(u32_to_utf8(std::u32string_view(cps).substr(i, end - i)));
      return out;
    }
    size_t j = i;
    while (j < cps.size() && !py_isspace(cps[j])) ++j;
    out.push_back(u32_to_utf8(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::string* sep, long long maxsplit) {
  if (maxsplit < 0) return py_split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    size_t end = s.size();
    while (static_cast<long long>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::u32string cps = utf8_to_u32(s);
  size_t end = cps.size();
  while (true) {
    while (end > 0 && py_isspace(cps[end - 1])) --end;
    if (end == 0) break;
    if (static_cast<long long>(out.size()) == maxsplit) {
      size_t begin = 0;
      while (begin < end && py_isspace(cps[begin])) ++begin;
      out.push_back(u32_to_utf8(std::u32string_view(cps).substr(begin, end - begin)));
      break;
    }
    size_t j = end;
    while (j > 0 && !py_isspace(cps[j - 1])) --j;
    out.push_back(u32_to_utf8(std::u32string_view(cps).substr(j, end - j)));
    end = j;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s) {
  const std::u32string cps = utf8_to_u32(s);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
                     c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    out.push_back(u32_to_utf8(std::u32string_view(cps).substr(start, i - start)));
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < cps.size()) out.push_back(u32_to_utf8(std::u32string_view(cps).substr(start)));
  return out;
}

std::string py_upper(std::string_view s) {
  const std::u32string cps = utf8_to_u32(s);
  std::u32string out;
  for (char32_t c : cps) append_upper(out, c);
  return u32_to_utf8(out);
}

std::string py_lower(std::string_view s) {
  const std::u32string cps = utf8_to_u32(s);
  std::u32string out;
  for (size_t i = 0; i < cps.size(); ++i) append_lower(out, cps, i);
  return u32_to_utf8(out);
}

std::string py_capitalize(std::string_view s) {
  const std::u32string cps = utf8_to_u32(s);
  std::u32string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0)
      append_title(out, cps[i]);
    else
      append_lower(out, cps, i);
  }
  return u32_to_utf8(out);
}

std::string py_title(std::string_view s) {
  const std::u32string cps = utf8_to_u32(s);
  std::u32string out;
  bool prev_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (prev_cased)
      append_lower(out, cps, i);
    else
      append_title(out, cps[i]);
    prev_cased = is_cased(cps[i]);
  }
  return u32_to_utf8(out);
}

bool py_is_cased(char32_t c) { return is_cased(c); }

std::string py_replace(std::string_view s, std::string_view old_sub, std::string_view new_sub, long long count) {
  std::string out;
  if (old_sub.empty()) {
    const std::u32string cps = utf8_to_u32(s);
    long long done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out.append(new_sub);
        ++done;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  long long done = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(old_sub, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(new_sub);
    pos = hit + old_sub.size();
    ++done;
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace ls::chat
