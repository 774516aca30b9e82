# embed_web.cmake: turns the page's files (web/*) into a C++ source of byte arrays, run at build time by
# src/server/CMakeLists.txt (cmake -DWEB_DIR=... -DOUT=... -P embed_web.cmake). Each file gets its URL path
# (index.html is "/", every other file "/ui/NAME"), its content type from its extension (a file of another type
# stops the build rather than be served wrong) and an ETag from its sha256. The output is rewritten only when
# it changes, so an unchanged page recompiles nothing.
cmake_minimum_required(VERSION 3.25)
if(NOT WEB_DIR OR NOT OUT)
  message(FATAL_ERROR "embed_web.cmake: give -DWEB_DIR=<dir> -DOUT=<file.cpp>")
endif()

set(types_html "text/html; charset=utf-8")
set(types_css "text/css; charset=utf-8")
set(types_js "text/javascript; charset=utf-8")
set(types_svg "image/svg+xml")
set(types_png "image/png")
set(types_ico "image/x-icon")
set(types_json "application/json")
set(types_txt "text/plain; charset=utf-8")

file(GLOB files LIST_DIRECTORIES false RELATIVE ${WEB_DIR} ${WEB_DIR}/*)
list(SORT files)
set(arrays "")
set(entries "")
set(index 0)
foreach(name ${files})
  if(name MATCHES "^\\.")
    continue()
  endif()
  string(REGEX MATCH "[^.]+$" ext "${name}")
  string(TOLOWER "${ext}" ext)
  if(NOT DEFINED types_${ext})
    message(FATAL_ERROR "embed_web.cmake: web/${name}: no content type for .${ext} (add it to embed_web.cmake)")
  endif()
  if(NOT name MATCHES "^[A-Za-z0-9._-]+$")
    message(FATAL_ERROR "embed_web.cmake: web/${name}: use letters, digits, '.', '_' and '-' in file names")
  endif()
  file(READ ${WEB_DIR}/${name} hex HEX)
  file(SHA256 ${WEB_DIR}/${name} sha)
  string(SUBSTRING "${sha}" 0 20 etag)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  if(size EQUAL 0)
    set(bytes "0")
  else()
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(REPEAT "0x..," 24 row)
    string(REGEX REPLACE "(${row})" "\\1\n    " bytes "${bytes}")
  endif()
  if(name STREQUAL "index.html")
    set(path "/")
  else()
    set(path "/ui/${name}")
  endif()
  string(APPEND arrays "// web/${name}\nconst unsigned char kFile${index}[] = {\n    ${bytes}};\n")
  string(APPEND entries "      {\"${path}\", \"${types_${ext}}\", \"\\\"${etag}\\\"\", "
                        "std::string_view(reinterpret_cast<const char*>(kFile${index}), ${size})},\n")
  math(EXPR index "${index} + 1")
endforeach()
if(index EQUAL 0)
  message(FATAL_ERROR "embed_web.cmake: no files in ${WEB_DIR}")
endif()

set(text "// Generated from web/ by cmake/embed_web.cmake at build time. Do not edit; edit web/ instead.
#include \"server/web_assets.h\"

namespace ls::server {
namespace {

${arrays}
}  // namespace

std::span<const WebAsset> web_assets() {
  static const WebAsset assets[] = {
${entries}  };
  return assets;
}

}  // namespace ls::server
")
file(WRITE ${OUT}.tmp "${text}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
