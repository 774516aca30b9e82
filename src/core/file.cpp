// file.cpp: whole-file reads.
#include "core/file.h"

#include <fstream>
#include <sstream>

namespace ls {

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path);
  std::string out;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    out.append(buffer, static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes) return invalid_argument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  if (in.bad()) return internal_error("error reading " + path);
  return out;
}

}  // namespace ls
