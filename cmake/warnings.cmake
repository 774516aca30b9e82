# warnings.cmake: loraserve_target_defaults(target) sets the include root, warnings and the sanitizer flags
# every project target shares.
function(loraserve_target_defaults target)
  target_include_directories(${target} PUBLIC ${LORASERVE_SRC_DIR})
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Werror=return-type>)
  loraserve_sanitize(${target})
endfunction()
