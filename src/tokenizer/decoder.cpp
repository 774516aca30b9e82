// decoder.cpp: the decoders and their factory.
#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace ls {
namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  Status decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t mark = bytes.size();
      if (!byte_level::decode_to_bytes(token, bytes)) {
        bytes.resize(mark);
        bytes.append(token);  // a token outside the alphabet stays as its own UTF-8
      }
    }
    tokens.assign(1, unicode::to_valid_utf8_lossy(bytes));
    return Status::ok();
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool prepend) : replacement_(std::move(replacement)), prepend_(prepend) {}
  Status decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      size_t pos = 0;
      while (pos < t.size()) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && prepend_)) out.push_back(' ');
          pos += replacement_.size();
        } else {
          out.push_back(t[pos++]);
        }
      }
      tokens[i] = std::move(out);
    }
    return Status::ok();
  }

 private:
  std::string replacement_;
  bool prepend_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  Status decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      size_t prev = 0;
      LS_RETURN_IF_ERROR(regex_->for_each_match(token, [&](size_t start, size_t end) {
        out.append(token, prev, start - prev);
        out.append(content_);
        prev = end;
      }));
      out.append(token, prev, std::string::npos);
      token = std::move(out);
    }
    return Status::ok();
  }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  Status decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : tokens) {
      int byte = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        const int hi = hex_value(token[3]), lo = hex_value(token[4]);
        if (hi >= 0 && lo >= 0) byte = hi * 16 + lo;
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
    return Status::ok();
  }
};

class FuseDecoder final : public Decoder {
 public:
  Status decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& t : tokens) joined.append(t);
    tokens.assign(1, std::move(joined));
    return Status::ok();
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  Status decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<size_t> offsets;  // byte offset of each character, then the end
      std::vector<char32_t> chars;
      for (size_t i = 0; i < token.size();) {
        size_t len;
        chars.push_back(unicode::decode(token, i, &len));
        offsets.push_back(i);
        i += len;
      }
      offsets.push_back(token.size());
      size_t start_cut = 0;
      for (size_t i = 0; i < start_ && i < chars.size() && chars[i] == content_; ++i) start_cut = i + 1;
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        const size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      token = token.substr(offsets[start_cut], offsets[stop_cut] - offsets[start_cut]);
    }
    return Status::ok();
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

// BPEDecoder: the suffix marks word ends; it becomes a space except on the last token.
class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  Status decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string replacement = i + 1 == tokens.size() ? "" : " ";
      std::string out;
      size_t pos = 0, found;
      while (!suffix_.empty() && (found = tokens[i].find(suffix_, pos)) != std::string::npos) {
        out.append(tokens[i], pos, found - pos).append(replacement);
        pos = found + suffix_.size();
      }
      out.append(tokens[i], pos, std::string::npos);
      tokens[i] = std::move(out);
    }
    return Status::ok();
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  Status decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) LS_RETURN_IF_ERROR(step->decode_chain(tokens));
    return Status::ok();
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

Result<char32_t> single_char(const Json& config, const char* key) {
  LS_ASSIGN_OR_RETURN(const std::string s, required_string(config, key));
  if (s.empty() || unicode::count_chars(s) != 1) {
    return invalid_argument(std::string("field \"") + key + "\" must be one character");
  }
  size_t len;
  return unicode::decode(s, 0, &len);
}

Result<std::unique_ptr<Decoder>> make_metaspace(const Json& config) {
  LS_ASSIGN_OR_RETURN(const char32_t c, single_char(config, "replacement"));
  std::string replacement;
  unicode::append_utf8(replacement, c);
  LS_ASSIGN_OR_RETURN(const std::string scheme, optional_string(config, "prepend_scheme", "always"));
  if (scheme != "always" && scheme != "first" && scheme != "never") {
    return invalid_argument("Metaspace: unknown prepend_scheme \"" + scheme + "\"");
  }
  bool never = scheme == "never";
  if (const Json* add = find_field(config, "add_prefix_space"); add && add->is_boolean() && !add->get<bool>()) {
    if (!never) return invalid_argument("Metaspace: add_prefix_space does not match declared prepend_scheme");
  }
  return std::unique_ptr<Decoder>(new MetaspaceDecoder(replacement, !never));
}

Result<std::unique_ptr<Decoder>> make_replace(const Json& config) {
  const Json* pattern = find_field(config, "pattern");
  if (!pattern || !pattern->is_object()) return invalid_argument("Replace needs a \"pattern\" object");
  std::unique_ptr<Regex> regex;
  if (const Json* s = find_field(*pattern, "String"); s && s->is_string()) {
    LS_ASSIGN_OR_RETURN(regex, Regex::compile(escape_regex(s->get<std::string>())));
  } else if (const Json* r = find_field(*pattern, "Regex"); r && r->is_string()) {
    LS_ASSIGN_OR_RETURN(regex, Regex::compile(r->get<std::string>()));
  } else {
    return invalid_argument("Replace pattern must have a \"String\" or \"Regex\" string");
  }
  LS_ASSIGN_OR_RETURN(std::string content, required_string(config, "content"));
  return std::unique_ptr<Decoder>(new ReplaceDecoder(std::move(regex), std::move(content)));
}

Result<std::unique_ptr<Decoder>> make_at_depth(const Json& config, int depth) {
  if (depth > 32) return invalid_argument("decoder Sequence nested too deeply");
  if (!config.is_object()) return invalid_argument("decoder must be an object");
  LS_ASSIGN_OR_RETURN(const std::string type, required_string(config, "type"));
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(new ByteLevelDecoder());
  if (type == "Metaspace") return make_metaspace(config);
  if (type == "Replace") return make_replace(config);
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(new ByteFallbackDecoder());
  if (type == "Fuse") return std::unique_ptr<Decoder>(new FuseDecoder());
  if (type == "Strip") {
    LS_ASSIGN_OR_RETURN(const char32_t content, single_char(config, "content"));
    LS_ASSIGN_OR_RETURN(const int64_t start, optional_int(config, "start", 0));
    LS_ASSIGN_OR_RETURN(const int64_t stop, optional_int(config, "stop", 0));
    if (start < 0 || stop < 0) return invalid_argument("Strip start and stop must be non-negative");
    return std::unique_ptr<Decoder>(new StripDecoder(content, static_cast<size_t>(start), static_cast<size_t>(stop)));
  }
  if (type == "BPEDecoder") {
    LS_ASSIGN_OR_RETURN(std::string suffix, optional_string(config, "suffix", "</w>"));
    return std::unique_ptr<Decoder>(new BpeDecoder(std::move(suffix)));
  }
  if (type == "Sequence") {
    const Json* list = find_field(config, "decoders");
    if (!list || !list->is_array()) return invalid_argument("Sequence needs a \"decoders\" array");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const Json& item : *list) {
      LS_ASSIGN_OR_RETURN(auto step, make_at_depth(item, depth + 1));
      steps.push_back(std::move(step));
    }
    return std::unique_ptr<Decoder>(new SequenceDecoder(std::move(steps)));
  }
  return unsupported("unsupported decoder type \"" + type + "\"");
}

}  // namespace

Result<std::unique_ptr<Decoder>> make_decoder(const Json& config) { return make_at_depth(config, 0); }

}  // namespace ls
