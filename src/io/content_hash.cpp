// content_hash.cpp: streaming SHA-256 over files through libcrypto's EVP interface.
#include "io/content_hash.h"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>

namespace ls {
namespace {

struct Digest {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx{EVP_MD_CTX_new(), EVP_MD_CTX_free};
  Digest() { LS_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1) << "sha256 init failed"; }
  void update(const void* data, size_t n) { LS_CHECK(EVP_DigestUpdate(ctx.get(), data, n) == 1) << "sha256 update"; }
  std::string hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    LS_CHECK(EVP_DigestFinal_ex(ctx.get(), out, &len) == 1) << "sha256 final failed";
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (unsigned int i = 0; i < len; ++i) {
      s.push_back(kHex[out[i] >> 4]);
      s.push_back(kHex[out[i] & 15]);
    }
    return s;
  }
};

}  // namespace

Result<std::string> sha256_of_files(const std::vector<std::string>& paths) {
  Digest d;
  std::vector<char> buffer(1 << 20);
  for (const std::string& path : paths) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) return not_found("cannot open " + path);
    uint64_t length = 0;
    Digest file;
    for (;;) {
      const size_t n = std::fread(buffer.data(), 1, buffer.size(), f.get());
      if (n == 0) break;
      file.update(buffer.data(), n);
      length += n;
    }
    if (std::ferror(f.get())) return internal_error("error reading " + path);
    d.update(&length, sizeof(length));
    const std::string h = file.hex();
    d.update(h.data(), h.size());
  }
  return d.hex();
}

std::string sha256_hex(const std::string& bytes) {
  Digest d;
  d.update(bytes.data(), bytes.size());
  return d.hex();
}

}  // namespace ls
