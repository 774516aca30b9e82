// sigv4.cpp: the SigV4 canonical request, string to sign and HMAC-SHA256 key derivation (libcrypto).
#include "io/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "io/content_hash.h"

namespace ls {
namespace {

constexpr const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  LS_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len) != nullptr)
      << "HMAC-SHA256 failed";
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string to_hex(const std::string& bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return std::string();
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

struct Signed {
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case name, value; sorted
  std::string signature;
  std::string signed_names;
  std::string scope;
};

Signed sign(const SigV4Request& r, const SigV4Credentials& c, const std::string& region, const std::string& date) {
  Signed s;
  const std::string payload = r.payload_sha256.empty() ? kEmptySha256 : r.payload_sha256;
  s.headers.emplace_back("host", r.host);
  s.headers.emplace_back("x-amz-content-sha256", payload);
  s.headers.emplace_back("x-amz-date", date);
  if (!c.session_token.empty()) s.headers.emplace_back("x-amz-security-token", c.session_token);
  for (const auto& [name, value] : r.headers) s.headers.emplace_back(lower(name), trim(value));
  std::sort(s.headers.begin(), s.headers.end());
  std::string canonical_headers;
  for (const auto& [name, value] : s.headers) {
    canonical_headers += name + ":" + value + "\n";
    s.signed_names += (s.signed_names.empty() ? "" : ";") + name;
  }
  const std::string canonical = r.method + "\n" + r.path + "\n" + sigv4_canonical_query(r.query) + "\n" +
                                canonical_headers + "\n" + s.signed_names + "\n" + payload;
  const std::string day = date.substr(0, 8);
  s.scope = day + "/" + region + "/s3/aws4_request";
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + date + "\n" + s.scope + "\n" + sha256_hex(canonical);
  std::string key = hmac_sha256("AWS4" + c.secret_access_key, day);
  key = hmac_sha256(key, region);
  key = hmac_sha256(key, "s3");
  key = hmac_sha256(key, "aws4_request");
  s.signature = to_hex(hmac_sha256(key, to_sign));
  return s;
}

}  // namespace

std::string sigv4_uri_encode(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string sigv4_canonical_query(std::vector<std::pair<std::string, std::string>> query) {
  for (auto& [name, value] : query) {
    name = sigv4_uri_encode(name, false);
    value = sigv4_uri_encode(value, false);
  }
  std::sort(query.begin(), query.end());
  std::string out;
  for (const auto& [name, value] : query) out += (out.empty() ? "" : "&") + name + "=" + value;
  return out;
}

std::string sigv4_signature(const SigV4Request& request, const SigV4Credentials& credentials,
                            const std::string& region, const std::string& amz_date) {
  return sign(request, credentials, region, amz_date).signature;
}

std::vector<std::string> sigv4_sign(const SigV4Request& request, const SigV4Credentials& credentials,
                                    const std::string& region, const std::string& amz_date) {
  const Signed s = sign(request, credentials, region, amz_date);
  std::vector<std::string> out;
  for (const auto& [name, value] : s.headers) out.push_back(name + ": " + value);
  out.push_back("authorization: AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + s.scope +
                ", SignedHeaders=" + s.signed_names + ", Signature=" + s.signature);
  return out;
}

std::string sigv4_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

}  // namespace ls
