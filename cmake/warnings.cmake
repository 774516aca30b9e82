# warnings.cmake: loraserve_target_defaults(target) sets the include root, warnings and the sanitizer flags
# every project target shares; loraserve_cuda_defaults(target) the CUDA targets' architecture and nvcc flags.
function(loraserve_target_defaults target)
  target_include_directories(${target} PUBLIC ${LORASERVE_SRC_DIR})
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Werror=return-type>)
  # GCC 12 at -O3 reports std::string and std::vector internals inlined into our code as overlapping or
  # out-of-bounds copies and uninitialized reads (GCC bugs 105329, 105651, 107138): noise, not findings.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict -Wno-array-bounds -Wno-maybe-uninitialized -Wno-stringop-overflow
      -Wno-stringop-overread>)
  endif()
  loraserve_sanitize(${target})
endfunction()

# CUDA targets: sm_90a, and C++20 passed to nvcc by us (CMake 3.25 does not know that nvcc 13 speaks it, so the
# dialect property is cleared).
function(loraserve_cuda_defaults target)
  set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES 90a)
  set_property(TARGET ${target} PROPERTY CUDA_STANDARD)
  set_property(TARGET ${target} PROPERTY CUDA_STANDARD_REQUIRED OFF)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -lineinfo --expt-relaxed-constexpr -Xcudafe=--diag_suppress=177>)
endfunction()
