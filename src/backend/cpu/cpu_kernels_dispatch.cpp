// cpu_kernels_dispatch.cpp: which kernel implementations this build has and this CPU can run. Compiled without
// any instruction-set flags, so the checks themselves run everywhere.
#include "backend/cpu/cpu_kernels.h"

namespace ls::cpu {
namespace detail {
const CpuKernels& avx512_kernel_table();
const CpuKernels& avx2_kernel_table();
}  // namespace detail

const CpuKernels* avx512_kernels() {
#ifdef LS_CPU_KERNELS_AVX512
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return &detail::avx512_kernel_table();
#endif
  return nullptr;
}

const CpuKernels* avx2_kernels() {
#ifdef LS_CPU_KERNELS_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return &detail::avx2_kernel_table();
#endif
  return nullptr;
}

}  // namespace ls::cpu
