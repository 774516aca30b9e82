// content_hash.h: SHA-256 digests of files (OpenSSL's libcrypto), the identity of an adapter's content: two
// adapters with the same digest are the same weights whatever they are called.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ls {

// Lower-case hex SHA-256 over the files in order: each file's byte length and the SHA-256 of its content (so
// moving bytes from one file to the next changes the digest). kNotFound when a file cannot be opened.
Result<std::string> sha256_of_files(const std::vector<std::string>& paths);

// Lower-case hex SHA-256 of a byte string.
std::string sha256_hex(const std::string& bytes);

}  // namespace ls
