// api_error.h: how a failure looks to each API family. One table maps a Status code to the HTTP status and
// error type of TGI/LoRAX routes ({"error", "error_type"}; 422 validation, 424 generation, 429 overloaded, 503)
// and of OpenAI routes ({"error": {"message", "type", "param", "code"}}; 400, 404, 429, 500, 503); the same error
// inside an event stream; and the SSE framing of each family (TGI "data:{json}", vLLM "data: {json}" + [DONE]).
#pragma once

#include <string>

#include "core/status.h"
#include "server/http_types.h"
#include "server/json_fields.h"

namespace ls::server {

enum class ApiFamily { kTgi, kOpenAi };

struct ApiError {
  int status = 500;
  std::string type;     // TGI error_type, OpenAI error.type
  std::string message;
  std::string param;    // OpenAI error.param ("" = null)
};

// The one table. TGI messages get TGI's prefixes ("Input validation error: ", "Request failed during
// generation: "); a kResourceExhausted becomes TGI's "Model is overloaded"; a kFailedDependency (an adapter's
// download failed) is 424 in both families.
ApiError to_api_error(ApiFamily family, const Status& status, std::string param = "");
// A body that is not JSON at all: 400 in both families (TGI error_type "validation").
ApiError malformed_body_error(ApiFamily family, const Status& status);

OJson error_json(ApiFamily family, const ApiError& error);
HttpResponse error_response(ApiFamily family, const ApiError& error);
HttpResponse error_response(ApiFamily family, const Status& status, std::string param = "");
// The family of a path: /v1/... is OpenAI, the rest TGI.
ApiFamily family_of_path(const std::string& path);

// 401 for a missing or wrong API key: TGI answers with an empty body, vLLM with {"error": "Unauthorized"}.
HttpResponse unauthorized_response(ApiFamily family);

// Server-sent events.
std::string tgi_event(const OJson& data);     // "data:{json}\n\n"
std::string openai_event(const OJson& data);  // "data: {json}\n\n"
inline constexpr const char* kOpenAiDone = "data: [DONE]\n\n";

}  // namespace ls::server
