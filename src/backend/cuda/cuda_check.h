// cuda_check.h: LS_CUDA_CHECK, the fatal check of a CUDA runtime or cuBLASLt call. A failing launch or copy is
// a broken invariant (shapes were validated before), so it aborts with the call, the error name and string.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/check.h"

#define LS_CUDA_CHECK(expr)                                                                              \
  do {                                                                                                   \
    const cudaError_t ls_cuda_err_ = (expr);                                                             \
    LS_CHECK(ls_cuda_err_ == cudaSuccess)                                                                \
        << #expr << ": " << cudaGetErrorName(ls_cuda_err_) << " (" << cudaGetErrorString(ls_cuda_err_) << ")"; \
  } while (0)

#define LS_CUBLAS_CHECK(expr)                                                                            \
  do {                                                                                                   \
    const cublasStatus_t ls_blas_status_ = (expr);                                                       \
    LS_CHECK(ls_blas_status_ == CUBLAS_STATUS_SUCCESS)                                                   \
        << #expr << ": cuBLAS status " << static_cast<int>(ls_blas_status_);                             \
  } while (0)
