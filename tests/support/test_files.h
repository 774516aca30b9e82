// test_files.h: helpers for tests that write files: a temporary directory removed on destruction, text files,
// and a minimal safetensors writer (tensors given as raw bytes, or raw headers for corruption tests).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ls::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

struct RawTensor {
  std::string name;
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

RawTensor f32_tensor(const std::string& name, std::vector<int64_t> shape, float fill);
// A safetensors file of the given tensors, laid out as the reference writer does.
std::vector<uint8_t> safetensors_bytes(const std::vector<RawTensor>& tensors);
// The 8-byte length, the header text, then `data`: for hand-made corrupt files.
std::vector<uint8_t> raw_safetensors(const std::string& header, const std::vector<uint8_t>& data,
                                     uint64_t declared_length = UINT64_MAX);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace ls::testing
