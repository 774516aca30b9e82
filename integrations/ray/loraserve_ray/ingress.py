"""ingress.py: the OpenAI ingress and build_openai_app.

The ingress reads `model`: a base model id (or nothing, with one model) goes to that model's deployment; Ray
Serve LLM's `base_model_id:adapter` goes there with multiplexed_model_id=adapter, and Ray's router picks a replica
that already holds the adapter (or a less busy one that will load it). That is all the routing there is. The body
is forwarded unchanged (loraserve understands base:adapter itself), and the answer comes back with loraserve's
status, content type and bytes, event streams chunk by chunk.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from loraserve_ray.config import LLMConfig, parse_llm_configs, valid_adapter_id
from loraserve_ray.server import server_class

_ROUTES = ("/v1/completions", "/v1/chat/completions")
# A replica that died under a request (killed, or its loraserve gone): Ray starts another; try again.
_RETRYABLE = tuple(e for e in (getattr(ray.exceptions, n, None) for n in (
    "RayActorError", "ActorDiedError", "ActorUnavailableError")) if e is not None)


def _error(status: int, message: str, kind: str, param: Optional[str] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


class OpenAiIngress:
    def __init__(self, servers: Dict[str, Any], configs: List[LLMConfig]):
        self.servers = servers
        self.configs = {c.model_id: c for c in configs}

    def resolve(self, model: Optional[str]) -> Tuple[str, str]:
        """(base model id, adapter or "") for a request's `model`; LookupError when it names nothing."""
        if not model:
            if len(self.configs) == 1:
                return next(iter(self.configs)), ""
            raise LookupError("`model` is required when several models are served")
        if model in self.configs:
            return model, ""
        base, _, adapter = model.partition(":")
        if adapter and base in self.configs and valid_adapter_id(adapter):
            return base, adapter
        raise LookupError(f"The model `{model}` does not exist.")

    def model_cards(self) -> List[Dict[str, Any]]:
        cards = []
        for mid, c in self.configs.items():
            cards.append({"id": mid, "object": "model", "owned_by": "loraserve", "root": c.model_source,
                          "parent": None})
            path = c.dynamic_lora_loading_path
            if path and os.path.isdir(path):  # s3:// prefixes are listed by loraserve, not here
                for name in sorted(os.listdir(path)):
                    if os.path.isfile(os.path.join(path, name, "adapter_config.json")):
                        cards.append({"id": f"{mid}:{name}", "object": "model", "owned_by": "loraserve",
                                      "root": f"{path}/{name}", "parent": mid})
        return cards

    async def __call__(self, request: Request) -> Response:
        path = request.url.path
        if request.method == "GET" and path in ("/health", "/-/healthz"):
            return Response(status_code=200)
        if request.method == "GET" and path == "/v1/models":
            return JSONResponse({"object": "list", "data": self.model_cards()})
        if request.method != "POST" or path not in _ROUTES:
            return _error(404, f"no route {request.method} {path}", "NotFoundError")
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as e:
            return _error(400, f"invalid JSON body: {e}", "BadRequestError")
        try:
            base, adapter = self.resolve(body.get("model"))
        except LookupError as e:
            return _error(404, str(e), "NotFoundError", "model")
        return await self.forward(base, adapter, path, body)

    async def forward(self, base: str, adapter: str, route: str, body: Dict[str, Any]) -> Response:
        handle = self.servers[base].options(stream=True, multiplexed_model_id=adapter)
        for attempt in range(4):
            stream = handle.generate.remote(route, body)
            try:
                status, content_type = await stream.__anext__()
                break
            except _RETRYABLE:
                if attempt == 3:
                    raise
                await asyncio.sleep(0.5 * (attempt + 1))
        if content_type.startswith("text/event-stream"):
            return StreamingResponse(stream, status_code=status, media_type=content_type)
        chunks = [chunk async for chunk in stream]
        return Response(b"".join(chunks), status_code=status, media_type=content_type)


def _deployment_name(prefix: str, model_id: str) -> str:
    return prefix + ":" + re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)


def build_openai_app(builder_config: Dict[str, Any]) -> "serve.Application":
    """Ray Serve LLM's builder, for loraserve: {"llm_configs": [LLMConfig dicts or YAML paths],
    "ingress_deployment_config": {...} (optional)}. Returns the application for serve.run()."""
    configs = parse_llm_configs(builder_config)
    servers = {}
    for c in configs:
        name = _deployment_name("LoraserveServer", c.model_id)
        servers[c.model_id] = serve.deployment(server_class(c)).options(**c.deployment_options(name)).bind(c)
    ingress_options = {"name": "OpenAiIngress", "ray_actor_options": {"num_cpus": 0}}
    ingress_options.update(builder_config.get("ingress_deployment_config") or {})
    return serve.deployment(OpenAiIngress).options(**ingress_options).bind(servers, configs)
