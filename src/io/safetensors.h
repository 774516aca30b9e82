// safetensors.h: the safetensors file format. A SafetensorsFile maps a file, validates its header completely
// (length bound, JSON, known dtypes, shape x dtype size == byte span, spans inside the buffer, contiguous and
// non-overlapping, no duplicate names) and hands out zero-copy TensorViews into the map.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "io/mapped_file.h"

namespace ls {

// A tensor stored in a file: a view into a mapped file that it keeps alive.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const unsigned char* data = nullptr;  // not necessarily aligned
  size_t num_bytes = 0;
  std::shared_ptr<const MappedFile> owner;

  int64_t num_elements() const;
  std::string shape_string() const;  // "[64, 16]"
  // Copies the tensor to float32 (F32/F16/BF16 only; LS_CHECKed).
  std::vector<float> to_f32() const;
};

// The spec's bound on the JSON header length.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> open(const std::string& path);
  // Validates a buffer already in memory (tests and fuzzing); `owner` may be null.
  static Result<SafetensorsFile> parse(std::shared_ptr<const MappedFile> owner, const unsigned char* data,
                                       size_t size, const std::string& name);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint: one model.safetensors or the shards named by model.safetensors.index.json.
class WeightFiles {
 public:
  // dir holds model.safetensors or model.safetensors.index.json (+ shards).
  static Result<WeightFiles> open_model_dir(const std::string& dir);
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace ls
