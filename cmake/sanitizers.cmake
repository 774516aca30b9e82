# sanitizers.cmake: ASan+UBSan for host code when LORASERVE_SANITIZE=ON (the loader tests run this way in CI).
function(loraserve_sanitize target)
  if(LORASERVE_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer>)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()
