// openapi.h: GET /openapi.json, an OpenAPI 3.0 document of every route, request and response the server has.
// It is written against what the code emits and validates (the limits are this server's), because CI fuzzes
// the server against it: every documented request must get a documented status, every response must match.
#pragma once

#include <string>
#include <vector>

#include "server/api_model.h"
#include "server/json_fields.h"

namespace ls::server {

// What the document describes of this server.
struct OpenApiContext {
  std::string version;
  ApiLimits limits;
  bool secured = false;                  // an API key is required (guarded routes declare the bearer scheme)
  bool lora_management = false;          // /v1/load_lora_adapter and /v1/unload_lora_adapter exist
  bool ui = true;                        // GET / is the page and /ui/{file} its files (else GET / is health)
  std::vector<std::string> page_files;   // the values {file} takes
  std::vector<std::string> page_types;   // their media types
  std::vector<std::string> model_names;  // values `model` may take on OpenAI routes (empty: any string)
  std::vector<std::string> adapter_ids;  // values `adapter_id` may take on TGI routes (empty: any string)
};

OJson openapi_document(const OpenApiContext& context);

// components.schemas (openapi_schemas.cpp).
OJson openapi_schemas(const OpenApiContext& context);

}  // namespace ls::server
