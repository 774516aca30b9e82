// tensor.h: Tensor, a non-owning 2-D view of backend memory (rows x cols, row stride `ld` in elements), and
// Buffer, an owning allocation made by a Backend. Ops take Tensors; column slices (a fused QKV output's K part)
// are Tensors with the parent's ld.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

#include "core/check.h"
#include "core/dtype.h"

namespace ls {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;  // elements between the starts of consecutive rows (>= cols)

  static Tensor make(void* data, DType dtype, int64_t rows, int64_t cols) {
    return Tensor{data, dtype, rows, cols, cols};
  }
  size_t element_size() const { return dtype_size(dtype); }
  bool contiguous() const { return ld == cols; }
  size_t num_bytes() const { return static_cast<size_t>(rows * cols) * element_size(); }

  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // Rows [begin, begin + n).
  Tensor row_slice(int64_t begin, int64_t n) const {
    LS_CHECK(begin >= 0 && begin + n <= rows) << "row slice out of range";
    return Tensor{static_cast<char*>(data) + begin * ld * element_size(), dtype, n, cols, ld};
  }
  // Columns [begin, begin + n) of every row.
  Tensor col_slice(int64_t begin, int64_t n) const {
    LS_CHECK(begin >= 0 && begin + n <= cols) << "column slice out of range";
    return Tensor{static_cast<char*>(data) + begin * element_size(), dtype, rows, n, ld};
  }
};

// Owning backend memory; frees itself through the deleter the backend gave it. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(void* data, size_t bytes, std::function<void(void*)> deleter)
      : data_(data), bytes_(bytes), deleter_(std::move(deleter)) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      deleter_ = std::move(o.deleter_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Tensor as_tensor(DType dtype, int64_t rows, int64_t cols) const {
    LS_CHECK(static_cast<size_t>(rows * cols) * dtype_size(dtype) <= bytes_) << "tensor larger than its buffer";
    return Tensor::make(data_, dtype, rows, cols);
  }

 private:
  void reset() {
    if (data_ && deleter_) deleter_(data_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::function<void(void*)> deleter_;
};

}  // namespace ls
