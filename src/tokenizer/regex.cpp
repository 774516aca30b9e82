// regex.cpp: PCRE2 compilation with JIT, a per-thread match data and JIT stack, and match iteration.
#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/unicode.h"

namespace ls {
namespace {

// Oniguruma (Unicode): \s is Zs/Zl/Zp plus \t-\r and U+0085; \w is letters, marks, decimal numbers and
// connector punctuation. PCRE2's UCP \s also takes U+180E and its \w skips marks and takes other numbers.
constexpr std::string_view kSpaceBody = "\\t-\\r\\x{85}\\p{Zs}\\p{Zl}\\p{Zp}";

struct CategoryDelta {
  std::string_view name;
  std::string_view members;
};

// Characters Oniguruma (Unicode 16) puts in a category that PCRE2 10.42 (Unicode 14) does not know yet.
constexpr CategoryDelta kCategoryDeltas[] = {
#include "tokenizer/unicode_delta.inc"
};

std::string_view category_delta(std::string_view name) {
  for (const CategoryDelta& d : kCategoryDeltas) {
    if (d.name == name) return d.members;
  }
  return {};
}

// \p{name} as class members, with the newer characters added.
std::string category_body(std::string_view name) {
  return "\\p{" + std::string(name) + "}" + std::string(category_delta(name));
}

const std::string& word_body() {
  static const std::string kBody = category_body("L") + category_body("M") + category_body("Nd") + category_body("Pc");
  return kBody;
}

struct ThreadMatchState {
  pcre2_match_data* data = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  ~ThreadMatchState() {
    if (data) pcre2_match_data_free(data);
    if (context) pcre2_match_context_free(context);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  if (!state.data) {
    // Patterns here have at most a handful of groups; ovector of 64 pairs is plenty, PCRE2 truncates safely.
    state.data = pcre2_match_data_create(64, nullptr);
    state.stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    state.context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(state.context, nullptr, state.stack);
    pcre2_set_match_limit(state.context, 100'000'000);
    pcre2_set_depth_limit(state.context, 1'000'000);
  }
  return state;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

Regex::~Regex() = default;

namespace {

// Appends the translation of the escape at p[i] == '\\' and leaves i on its last character.
void append_escape(std::string_view p, size_t& i, bool in_class, std::string& out) {
  const char e = p[++i];
  if (e == 'p' && i + 1 < p.size() && p[i + 1] == '{') {
    const size_t close = p.find('}', i + 2);
    if (close != std::string_view::npos && p[i + 2] != '^') {
      const std::string_view name = p.substr(i + 2, close - i - 2);
      i = close;
      if (category_delta(name).empty()) {
        out.append("\\p{").append(name).append("}");
      } else if (in_class) {
        out.append(category_body(name));
      } else {
        out.append("[").append(category_body(name)).append("]");
      }
      return;
    }
  }
  if (e == 's' || e == 'w') {
    const std::string_view body = e == 's' ? kSpaceBody : std::string_view(word_body());
    if (in_class) {
      out.append(body);
    } else {
      out.append("[").append(body).append("]");
    }
  } else if ((e == 'S' || e == 'W') && !in_class) {
    out.append("[^").append(e == 'S' ? kSpaceBody : std::string_view(word_body())).append("]");
  } else {
    out.push_back('\\');
    out.push_back(e);
  }
}

}  // namespace

std::string translate_oniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      append_escape(p, i, class_depth > 0, out);
      continue;
    }
    if (c == '[') {
      if (class_depth == 0) {
        out.push_back(c);
        ++class_depth;
        // A ']' right after '[' or '[^' is a literal member.
        if (i + 1 < p.size() && p[i + 1] == '^') out.push_back(p[++i]);
        if (i + 1 < p.size() && p[i + 1] == ']') out.push_back(p[++i]);
        continue;
      }
      if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
        const size_t end = p.find(":]", i + 2);
        if (end != std::string_view::npos) {
          out.append(p.substr(i, end + 2 - i));
          i = end + 1;
          continue;
        }
      }
      ++class_depth;
    } else if (c == ']' && class_depth > 0) {
      --class_depth;
    }
    out.push_back(c);
  }
  return out;
}

std::string escape_regex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (u >= 0x80) || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                       (c >= 'A' && c <= 'Z') || c == '_' || c == ' ';
    if (!plain) out.push_back('\\');
    if (u < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out.append("x{");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
      out.push_back('}');
      continue;
    }
    out.push_back(c);
  }
  return out;
}

Result<std::unique_ptr<Regex>> Regex::compile(std::string_view pattern) {
  if (!unicode::is_valid_utf8(pattern)) return invalid_argument("regex pattern is not valid UTF-8");
  const std::string translated = translate_oniguruma(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    return invalid_argument("cannot compile regex \"" + std::string(pattern) + "\": " +
                            reinterpret_cast<const char*>(buffer) + " at offset " + std::to_string(offset));
  }
  std::unique_ptr<Regex> regex(new Regex());
  regex->impl_ = std::make_unique<Impl>();
  regex->impl_->code = code;
  regex->impl_->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  regex->pattern_ = std::string(pattern);
  return regex;
}

Status Regex::for_each_match(std::string_view text,
                             const std::function<void(size_t, size_t)>& on_match) const {
  ThreadMatchState& state = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t last_match_end = SIZE_MAX;
  while (pos <= text.size()) {
    int rc;
    // The text is valid UTF-8 (the tokenizer repairs input first), so skip PCRE2's own check.
    if (impl_->jit) {
      rc = pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, state.data,
                           state.context);
    } else {
      rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, state.data, state.context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      return resource_exhausted(std::string("regex match failed: ") + reinterpret_cast<const char*>(buffer));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const size_t start = ov[0], end = ov[1];
    if (end < start || end > text.size()) return invalid_argument("regex reported a match ending before it starts");
    if (start == end && end == last_match_end) {
      // An empty match where the previous one ended: step one character and search again.
      if (start >= text.size()) break;
      pos = start + unicode::lead_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    on_match(start, end);
    last_match_end = end;
    pos = end;
  }
  return Status::ok();
}

}  // namespace ls
