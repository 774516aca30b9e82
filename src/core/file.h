// file.h: reading a whole file into memory, the one place the project does it (configs, templates, adapter
// configs), with a size cap so a hostile or mistaken path cannot make us read gigabytes.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace ls {

// The file's bytes; kNotFound when it cannot be opened, kInvalidArgument when it is larger than max_bytes.
Result<std::string> read_file(const std::string& path, size_t max_bytes = size_t{64} << 20);

}  // namespace ls
