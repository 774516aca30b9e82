# warnings.cmake: loraserve_target_defaults(target) sets the include root, warnings and the sanitizer flags
# every project target shares.
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
