// api_error.cpp: the Status -> HTTP table of both API families, error bodies and SSE framing.
#include "server/api_error.h"

namespace ls::server {

ApiError to_api_error(ApiFamily family, const Status& status, std::string param) {
  ApiError e;
  e.param = std::move(param);
  const std::string& m = status.message();
  if (family == ApiFamily::kTgi) {
    switch (status.code()) {
      case ErrorCode::kOk:
      case ErrorCode::kInvalidArgument:
      case ErrorCode::kNotFound:
      case ErrorCode::kUnsupported:
      case ErrorCode::kCorrupt:
        return {422, "validation", "Input validation error: " + m, e.param};
      case ErrorCode::kResourceExhausted:
        return {429, "overloaded", "Model is overloaded", e.param};
      case ErrorCode::kUnavailable:
        return {503, "unavailable", m, e.param};
      case ErrorCode::kInternal:
      case ErrorCode::kFailedDependency:
        return {424, "generation", "Request failed during generation: " + m, e.param};
    }
  }
  switch (status.code()) {
    case ErrorCode::kOk:
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
    case ErrorCode::kCorrupt:
      return {400, "BadRequestError", m, e.param};
    case ErrorCode::kNotFound:
      return {404, "NotFoundError", m, e.param};
    case ErrorCode::kResourceExhausted:
      return {429, "RateLimitError", m, e.param};
    case ErrorCode::kUnavailable:
      return {503, "ServiceUnavailableError", m, e.param};
    case ErrorCode::kInternal:
      return {500, "InternalServerError", m, e.param};
    case ErrorCode::kFailedDependency:
      return {424, "FailedDependencyError", m, e.param};
  }
  return {500, "InternalServerError", m, e.param};
}

ApiError malformed_body_error(ApiFamily family, const Status& status) {
  if (family == ApiFamily::kTgi) return {400, "validation", status.message(), ""};
  return {400, "BadRequestError", status.message(), ""};
}

OJson error_json(ApiFamily family, const ApiError& error) {
  if (family == ApiFamily::kTgi) return OJson{{"error", error.message}, {"error_type", error.type}};
  OJson inner = {{"message", error.message},
                 {"type", error.type},
                 {"param", error.param.empty() ? OJson() : OJson(error.param)},
                 {"code", error.status}};
  return OJson{{"error", std::move(inner)}};
}

HttpResponse error_response(ApiFamily family, const ApiError& error) {
  HttpResponse r;
  r.status = error.status;
  r.body = dump_json(error_json(family, error));
  return r;
}

HttpResponse error_response(ApiFamily family, const Status& status, std::string param) {
  return error_response(family, to_api_error(family, status, std::move(param)));
}

ApiFamily family_of_path(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 ? ApiFamily::kOpenAi : ApiFamily::kTgi;
}

HttpResponse unauthorized_response(ApiFamily family) {
  HttpResponse r;
  r.status = 401;
  if (family == ApiFamily::kTgi) {
    r.content_type.clear();
  } else {
    r.body = R"({"error":"Unauthorized"})";
  }
  return r;
}

std::string tgi_event(const OJson& data) { return "data:" + dump_json(data) + "\n\n"; }

std::string openai_event(const OJson& data) { return "data: " + dump_json(data) + "\n\n"; }

}  // namespace ls::server
