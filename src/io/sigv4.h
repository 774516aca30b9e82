// sigv4.h: AWS Signature Version 4 for S3 requests (the signing that AWS S3, MinIO, moto, Ceph and GCS's
// S3-compatible endpoint accept): the canonical request, the string to sign, the derived signing key and the
// Authorization header, as AWS's "Signature Version 4 signing process" documents them. Pure functions; the
// HTTP transfer is s3_client's.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ls {

struct SigV4Credentials {
  std::string access_key_id, secret_access_key, session_token;  // session token "" when not temporary
};

struct SigV4Request {
  std::string method = "GET";
  std::string host;          // as sent in the Host header (with ":port" when not the scheme's default)
  std::string path = "/";    // already URI-encoded ("/bucket/a%20b"), as sent
  std::vector<std::pair<std::string, std::string>> query;  // decoded names and values
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers to sign (e.g. range)
  std::string payload_sha256;  // hex SHA-256 of the body ("" = the empty body's)
};

// URI-encodes as SigV4 wants: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper-case hex); '/' kept when
// keep_slash (object key paths).
std::string sigv4_uri_encode(const std::string& s, bool keep_slash);

// The query string in canonical order (sorted by encoded name, then value), encoded: also what is sent.
std::string sigv4_canonical_query(std::vector<std::pair<std::string, std::string>> query);

// The headers to send for `request` signed at `amz_date` (YYYYMMDD'T'HHMMSS'Z') for `region` and service
// "s3": Host, x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session token), Authorization,
// plus request.headers. Each entry is "Name: value".
std::vector<std::string> sigv4_sign(const SigV4Request& request, const SigV4Credentials& credentials,
                                    const std::string& region, const std::string& amz_date);

// The signature alone (lower-case hex), for tests against published examples.
std::string sigv4_signature(const SigV4Request& request, const SigV4Credentials& credentials,
                            const std::string& region, const std::string& amz_date);

// The current UTC time as an x-amz-date value.
std::string sigv4_now();

}  // namespace ls
