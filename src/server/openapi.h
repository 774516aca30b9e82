// openapi.h: GET /openapi.json, an OpenAPI 3.0 document of every route, request and response the server has.
// It is written against what the code emits and validates (the limits are this server's), because CI fuzzes
// the server against it: every documented request must get a documented status, every response must match.
#pragma once

#include <string>

#include "server/api_model.h"
#include "server/json_fields.h"

namespace ls::server {

OJson openapi_document(const std::string& version, const ApiLimits& limits);

// components.schemas (openapi_schemas.cpp).
OJson openapi_schemas(const ApiLimits& limits);

}  // namespace ls::server
