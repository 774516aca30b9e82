// s3_client.h: S3Client, the object-storage reads loraserve needs (list a prefix, download an object to a
// file) from AWS S3 or an S3-compatible endpoint (MinIO, Ceph, moto, GCS's interoperability endpoint), signed
// with SigV4 (io/sigv4.h) and carried by libcurl. Settings come once, at start-up, in S3Options
// (from_environment reads the AWS_* variables the AWS tools use); nothing here reads the environment later.
// Downloads are verified: the byte count against the listed size and Content-Length, and the MD5 against a
// single-part ETag. Failures are values: kNotFound for a missing bucket or key, kFailedDependency for
// refused credentials, timeouts, truncated or corrupted transfers and server errors, each message naming the
// object and S3's own error code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/sigv4.h"

namespace ls {

struct S3Options {
  std::string endpoint_url;        // "": AWS (https://BUCKET.s3.REGION.amazonaws.com); else path-style
                                   //  requests to this URL (http://127.0.0.1:9000, https://storage.googleapis.com)
  std::string region = "us-east-1";
  SigV4Credentials credentials;    // access key "": unsigned requests (public buckets)
  double connect_timeout_s = 10;
  double stall_timeout_s = 30;     // a transfer that moves no byte for this long fails
  double request_timeout_s = 0;    // whole request (0: no limit beyond the stall timeout)

  // AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL), AWS_REGION (else AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID,
  // AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. Called once by the command line, never by the library.
  static S3Options from_environment();
};

// Whether this build can reach object storage (LORASERVE_S3, libcurl).
bool s3_supported();

// "s3://bucket/key/prefix": a bucket of 3-63 characters [a-z0-9._-] and a key whose '/'-separated parts are
// each non-empty, not "." or "..", of printable ASCII without '\\' or '%'. A trailing '/' is dropped.
struct S3Location {
  std::string bucket, key;
  std::string url() const { return "s3://" + bucket + (key.empty() ? "" : "/" + key); }
};
Result<S3Location> parse_s3_url(const std::string& url);
bool is_s3_url(const std::string& s);  // starts with "s3://"

struct S3Object {
  std::string key;
  int64_t size = 0;
  std::string etag;  // without quotes
};

class S3Client {
 public:
  explicit S3Client(S3Options options);
  const S3Options& options() const { return options_; }

  // Every object whose key starts with `prefix` (ListObjectsV2, following continuation tokens), or at most
  // max_keys of them.
  Result<std::vector<S3Object>> list(const std::string& bucket, const std::string& prefix,
                                     int32_t max_keys = 0) const;
  // Downloads `object` into the file `path` (created or truncated) and verifies it. On failure the file may
  // hold part of the object: the caller writes to a temporary name and removes it.
  Status download(const std::string& bucket, const S3Object& object, const std::string& path) const;

 private:
  S3Options options_;
};

// S3's XML: the entities decoded text of every <tag>...</tag> in `xml`, in order (no nesting of the same tag).
std::vector<std::string> xml_elements(const std::string& xml, const std::string& tag);

}  // namespace ls
