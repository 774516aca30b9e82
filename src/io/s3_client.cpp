// s3_client.cpp: S3 requests over libcurl (one easy handle per request, so any thread may call), SigV4
// headers, the ListObjectsV2 and error XML, and download verification (size, Content-Length, MD5 = ETag).
#include "io/s3_client.h"

#include <openssl/evp.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#ifdef LS_HAVE_CURL
#include <curl/curl.h>
#endif

namespace ls {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string decode_entities(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const size_t end = s.find(';', i);
    if (end == std::string::npos || end - i > 10) {
      out.push_back('&');
      continue;
    }
    const std::string name = s.substr(i + 1, end - i - 1);
    if (name == "amp") out.push_back('&');
    else if (name == "lt") out.push_back('<');
    else if (name == "gt") out.push_back('>');
    else if (name == "quot") out.push_back('"');
    else if (name == "apos") out.push_back('\'');
    else if (name.size() > 1 && name[0] == '#') {
      const long code = name[1] == 'x' ? std::strtol(name.c_str() + 2, nullptr, 16) : std::strtol(name.c_str() + 1, nullptr, 10);
      if (code > 0 && code < 0x80) out.push_back(static_cast<char>(code));
      else out += "&" + name + ";";  // keys we accept are ASCII; anything else stays visible
    } else {
      out += "&" + name + ";";
    }
    i = end;
  }
  return out;
}

std::string hex(const unsigned char* p, unsigned int n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

bool valid_bucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (unsigned char c : b)
    if (!(std::islower(c) || std::isdigit(c) || c == '.' || c == '-' || c == '_')) return false;
  return b.find("..") == std::string::npos;
}

bool valid_key_part(const std::string& part) {
  if (part.empty() || part == "." || part == ".." || part.size() > 255) return false;
  for (unsigned char c : part)
    if (c < 0x21 || c > 0x7e || c == '\\' || c == '%') return false;
  return true;
}

// Where a request for (bucket, key) goes: the URL curl fetches, the Host it sends and the path it signs.
struct Target {
  std::string url, host, path;
};

Target target_for(const S3Options& o, const std::string& bucket, const std::string& key) {
  Target t;
  const std::string encoded_key = sigv4_uri_encode(key, true);
  if (o.endpoint_url.empty()) {
    t.host = bucket + ".s3." + o.region + ".amazonaws.com";
    t.path = "/" + encoded_key;
    t.url = "https://" + t.host + t.path;
    return t;
  }
  std::string base = o.endpoint_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const size_t scheme_end = base.find("://");
  const size_t host_begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t path_begin = base.find('/', host_begin);
  t.host = base.substr(host_begin, path_begin == std::string::npos ? std::string::npos : path_begin - host_begin);
  const std::string base_path = path_begin == std::string::npos ? "" : base.substr(path_begin);
  t.path = base_path + "/" + bucket + (key.empty() ? "" : "/" + encoded_key);
  t.url = base.substr(0, path_begin == std::string::npos ? base.size() : path_begin) + t.path;
  return t;
}

Status http_error(const std::string& what, long status, const std::string& body) {
  const auto codes = xml_elements(body, "Code");
  const auto messages = xml_elements(body, "Message");
  std::string text = what + ": HTTP " + std::to_string(status);
  if (!codes.empty()) text += " " + codes.front();
  if (!messages.empty()) text += ": " + messages.front();
  if (status == 404) return not_found(text);
  if (status == 401 || status == 403)
    return failed_dependency(text + " (object storage refused the credentials: check AWS_ACCESS_KEY_ID, "
                                    "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)");
  return failed_dependency(text);
}

// What one request produced: the status, a bounded copy of a non-2xx body, and the bytes written to `file`.
struct Transfer {
  FILE* file = nullptr;                 // the 2xx body goes here when set, else into `body`
  std::string body;
  size_t body_limit = size_t{16} << 20;
  int64_t bytes = 0;
  long status = 0;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md5{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  bool write_failed = false;
};

#ifdef LS_HAVE_CURL
size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  const bool ok = t->status >= 200 && t->status < 300;
  if (ok && t->file) {
    if (std::fwrite(data, 1, bytes, t->file) != bytes) {
      t->write_failed = true;
      return 0;
    }
    EVP_DigestUpdate(t->md5.get(), data, bytes);
  } else {
    if (t->body.size() + bytes > t->body_limit) return 0;
    t->body.append(data, bytes);
  }
  t->bytes += static_cast<int64_t>(bytes);
  return bytes;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a status line (a new response after 100-continue resets)
    const size_t sp = line.find(' ');
    t->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    t->body.clear();
    t->bytes = 0;
  }
  return size * n;
}
#endif

// GET `key` of `bucket` with `query`; the body goes to transfer.file or transfer.body.
Status perform(const S3Options& o, const std::string& bucket, const std::string& key,
               const std::vector<std::pair<std::string, std::string>>& query, const std::string& what,
               Transfer& transfer) {
#ifdef LS_HAVE_CURL
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  const Target t = target_for(o, bucket, key);
  const std::string q = sigv4_canonical_query(query);
  const std::string url = t.url + (q.empty() ? "" : "?" + q);
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return internal_error("libcurl could not start a transfer");
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(nullptr, curl_slist_free_all);
  auto add = [&](const std::string& h) { headers.reset(curl_slist_append(headers.release(), h.c_str())); };
  if (!o.credentials.access_key_id.empty()) {
    SigV4Request r;
    r.host = t.host;
    r.path = t.path;
    r.query = query;
    for (const std::string& h : sigv4_sign(r, o.credentials, o.region, sigv4_now())) add(h);
  } else {
    add("host: " + t.host);
  }
  add("Expect:");
  char error[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout_s * 1000));
  if (o.request_timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(o.request_timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(o.stall_timeout_s + 0.5)));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  EVP_DigestInit_ex(transfer.md5.get(), EVP_md5(), nullptr);
  const CURLcode rc = curl_easy_perform(c);
  if (transfer.write_failed) return internal_error(what + ": cannot write the download to local disk");
  if (rc != CURLE_OK) {
    const std::string detail = error[0] ? error : curl_easy_strerror(rc);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return failed_dependency(what + ": timed out (" + detail + ")");
      case CURLE_PARTIAL_FILE:
        return failed_dependency(what + ": truncated transfer (" + detail + ")");
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
        return failed_dependency(what + ": cannot reach " + t.host + " (" + detail + ")");
      default:
        return failed_dependency(what + ": transfer failed (" + detail + ")");
    }
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  transfer.status = status;
  if (status < 200 || status >= 300) return http_error(what, status, transfer.body);
  return Status::ok();
#else
  (void)o, (void)bucket, (void)key, (void)query, (void)transfer;
  return unsupported(what + ": this loraserve was built without object storage support (LORASERVE_S3=OFF)");
#endif
}

}  // namespace

S3Options S3Options::from_environment() {
  S3Options o;
  o.endpoint_url = env_or("AWS_ENDPOINT_URL_S3", env_or("AWS_ENDPOINT_URL", ""));
  o.region = env_or("AWS_REGION", env_or("AWS_DEFAULT_REGION", o.region));
  o.credentials.access_key_id = env_or("AWS_ACCESS_KEY_ID", "");
  o.credentials.secret_access_key = env_or("AWS_SECRET_ACCESS_KEY", "");
  o.credentials.session_token = env_or("AWS_SESSION_TOKEN", "");
  return o;
}

bool s3_supported() {
#ifdef LS_HAVE_CURL
  return true;
#else
  return false;
#endif
}

bool is_s3_url(const std::string& s) { return s.rfind("s3://", 0) == 0; }

Result<S3Location> parse_s3_url(const std::string& url) {
  if (!is_s3_url(url)) return invalid_argument("\"" + url + "\" is not an s3:// URL");
  if (url.size() > 1024 || url.find('\0') != std::string::npos) return invalid_argument("invalid s3:// URL");
  std::string rest = url.substr(5);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  S3Location loc;
  const size_t slash = rest.find('/');
  loc.bucket = rest.substr(0, slash);
  if (!valid_bucket(loc.bucket)) return invalid_argument("\"" + url + "\": invalid bucket name");
  if (slash == std::string::npos) return loc;
  loc.key = rest.substr(slash + 1);
  size_t begin = 0;
  for (;;) {
    const size_t end = loc.key.find('/', begin);
    const std::string part = loc.key.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!valid_key_part(part)) return invalid_argument("\"" + url + "\": invalid object key");
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return loc;
}

std::vector<std::string> xml_elements(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  size_t pos = 0;
  for (;;) {
    const size_t b = xml.find(open, pos);
    if (b == std::string::npos) break;
    const size_t e = xml.find(close, b + open.size());
    if (e == std::string::npos) break;
    out.push_back(decode_entities(xml.substr(b + open.size(), e - b - open.size())));
    pos = e + close.size();
  }
  return out;
}

S3Client::S3Client(S3Options options) : options_(std::move(options)) {}

Result<std::vector<S3Object>> S3Client::list(const std::string& bucket, const std::string& prefix,
                                             int32_t max_keys) const {
  std::vector<S3Object> objects;
  std::string token;
  const std::string what = "listing s3://" + bucket + "/" + prefix;
  for (int page = 0; page < 10000; ++page) {
    std::vector<std::pair<std::string, std::string>> query = {{"list-type", "2"}, {"prefix", prefix}};
    if (max_keys > 0) query.emplace_back("max-keys", std::to_string(max_keys));
    if (!token.empty()) query.emplace_back("continuation-token", token);
    Transfer t;
    LS_RETURN_IF_ERROR(perform(options_, bucket, "", query, what, t));
    for (const std::string& c : xml_elements(t.body, "Contents")) {
      S3Object o;
      const auto key = xml_elements(c, "Key"), size = xml_elements(c, "Size"), etag = xml_elements(c, "ETag");
      if (key.empty() || size.empty()) return failed_dependency(what + ": malformed ListObjectsV2 answer");
      o.key = key.front();
      o.size = std::strtoll(size.front().c_str(), nullptr, 10);
      if (!etag.empty()) {
        o.etag = etag.front();
        if (o.etag.size() >= 2 && o.etag.front() == '"' && o.etag.back() == '"') o.etag = o.etag.substr(1, o.etag.size() - 2);
      }
      objects.push_back(std::move(o));
    }
    const auto truncated = xml_elements(t.body, "IsTruncated");
    const auto next = xml_elements(t.body, "NextContinuationToken");
    if (max_keys > 0 || truncated.empty() || truncated.front() != "true" || next.empty()) return objects;
    token = next.front();
  }
  return failed_dependency(what + ": too many pages");
}

Status S3Client::download(const std::string& bucket, const S3Object& object, const std::string& path) const {
  const std::string what = "downloading s3://" + bucket + "/" + object.key;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
  if (!f) return internal_error(what + ": cannot create " + path);
  Transfer t;
  t.file = f.get();
  LS_RETURN_IF_ERROR(perform(options_, bucket, object.key, {}, what, t));
  if (std::fflush(f.get()) != 0) return internal_error(what + ": cannot write " + path);
  if (t.bytes < object.size)
    return failed_dependency(what + ": truncated transfer: received " + std::to_string(t.bytes) + " of " +
                             std::to_string(object.size) + " bytes");
  if (t.bytes > object.size)
    return failed_dependency(what + ": the object changed during the download (" + std::to_string(t.bytes) +
                             " bytes, listed as " + std::to_string(object.size) + ")");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(t.md5.get(), digest, &n);
  // A single-part upload's ETag is the MD5 of the content; multipart ("...-N") and encrypted ones are not.
  const bool md5_etag = object.etag.size() == 32 && object.etag.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (md5_etag && hex(digest, n) != object.etag)
    return failed_dependency(what + ": checksum mismatch (MD5 " + hex(digest, n) + ", ETag " + object.etag + ")");
  return Status::ok();
}

}  // namespace ls
