// web_assets.h: the page's files (web/: HTML, CSS, JavaScript, icon), embedded into the server at build time
// by cmake/embed_web.cmake (the generated web_assets.cpp lives in the build directory). ui_routes.cpp serves
// them; nothing reads web/ at run time.
#pragma once

#include <span>
#include <string_view>

namespace ls::server {

struct WebAsset {
  std::string_view path;          // the URL path: "/" for index.html, "/ui/NAME" for every other file
  std::string_view content_type;  // from the file's extension
  std::string_view etag;          // quoted, from the content's sha256
  std::string_view body;
};

// Every embedded file, sorted by file name.
std::span<const WebAsset> web_assets();

}  // namespace ls::server
