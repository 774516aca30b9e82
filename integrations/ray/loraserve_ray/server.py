"""server.py: LoraserveServer, one Ray Serve replica = one `loraserve serve` process on the replica's device.

The replica starts loraserve on a free local port (CUDA when Ray gave it a GPU, else the CPU backend), waits for
/health, and forwards OpenAI requests to it, streaming chunk by chunk. Adapters are multiplexed models: the
multiplexed loader registers `adapter` with loraserve (/v1/load_lora_adapter, lora_path under
dynamic_lora_loading_path: a local directory or an s3:// prefix that loraserve downloads itself), and Ray's LRU
eviction beyond max_num_adapters_per_replica unregisters it (/v1/unload_lora_adapter). Ray's health check asks
loraserve's /health, so a dead loraserve gets its replica replaced; loraserve stops with its replica
(--parent-pid: loraserve asks the kernel for SIGTERM when the replica's process ends). Nothing runs between fork and
exec: a preexec_fn would fork the replica's Python with its gRPC threads, and gRPC's fork handlers in the child
have aborted there (an epoll on a descriptor close_fds had closed) and left an alarm that killed loraserve 3 s
later.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Any, AsyncIterator, Dict

import aiohttp
import ray
from ray import serve

from loraserve_ray.config import LLMConfig, valid_adapter_id

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AdapterLoadError(Exception):
    def __init__(self, status: int, body: bytes):
        super().__init__(body.decode(errors="replace"))
        self.status, self.body = status, body


class _LoadedAdapter:
    """A multiplexed model: an adapter registered with this replica's loraserve. Ray Serve calls __del__ when it
    evicts the adapter (in an executor thread); it is also safe when the garbage collector calls it later."""

    def __init__(self, base_url: str, name: str):
        self.base_url, self.name, self._unloaded = base_url, name, False

    def __del__(self) -> None:
        if self._unloaded:
            return
        self._unloaded = True
        body = json.dumps({"lora_name": self.name}).encode()
        req = urllib.request.Request(self.base_url + "/v1/unload_lora_adapter", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=30).read()
        except Exception:  # an unknown name (already gone) or a server shutting down: nothing to free
            pass


class LoraserveServer:
    def __init__(self, config: Dict[str, Any]):
        self.config = LLMConfig.from_dict(config)
        gpu = bool(ray.get_gpu_ids())
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        log_dir = self.config.log_dir or tempfile.mkdtemp(prefix="loraserve-replica-")
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"loraserve-{os.getpid()}-{self.port}.log")
        args = self.config.serve_args(self.port, "cuda" if gpu else "cpu") + ["--parent-pid", str(os.getpid())]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()
        self._session = None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loraserve exited with code {self.proc.returncode} at start-up; "
                                   f"log: {self.log_path}\n{self._log_tail()}")
            try:
                if urllib.request.urlopen(self.base_url + "/health", timeout=2).status == 200:
                    return
            except Exception:
                time.sleep(0.2)
        self.proc.kill()
        raise TimeoutError(f"loraserve did not become healthy in {self.config.startup_timeout_s}s; "
                           f"log: {self.log_path}\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode(errors="replace")
        except OSError:
            return ""

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def _load_adapter(self, adapter: str) -> _LoadedAdapter:
        if not valid_adapter_id(adapter):
            raise AdapterLoadError(400, json.dumps({"error": {
                "message": f"invalid adapter name {adapter!r}", "type": "BadRequestError", "param": "model",
                "code": 400}}).encode())
        session = await self._http()
        body = {"lora_name": adapter, "lora_path": self.config.adapter_path(adapter), "load_inplace": True}
        async with session.post(self.base_url + "/v1/load_lora_adapter", json=body) as r:
            data = await r.read()
            if r.status != 200:
                raise AdapterLoadError(r.status, data)
        return _LoadedAdapter(self.base_url, adapter)

    async def generate(self, route: str, body: Dict[str, Any]) -> AsyncIterator[Any]:
        """Forwards one OpenAI request. Yields (status, content type) first, then the body's chunks."""
        adapter = serve.get_multiplexed_model_id()
        if adapter:
            try:
                await self.get_adapter(adapter)  # the multiplexed loader of server_class()
            except AdapterLoadError as e:
                yield (e.status, "application/json")
                yield e.body
                return
        session = await self._http()
        for attempt in range(2):
            async with session.post(self.base_url + route, json=body) as r:
                # An adapter evicted between our load and this request (another request's load made room):
                # register it again once.
                if r.status == 404 and adapter and attempt == 0:
                    await r.read()
                    await self._load_adapter(adapter)
                    continue
                yield (r.status, r.headers.get("Content-Type", "application/json"))
                async for chunk in r.content.iter_any():
                    yield chunk
                return

    async def models(self) -> Dict[str, Any]:
        session = await self._http()
        async with session.get(self.base_url + "/v1/models") as r:
            return await r.json()

    async def check_health(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"loraserve exited with code {self.proc.returncode}; log: {self.log_path}")
        session = await self._http()
        async with session.get(self.base_url + "/health", timeout=aiohttp.ClientTimeout(total=10)) as r:
            if r.status != 200:
                raise RuntimeError(f"loraserve /health answered {r.status}")

    def __del__(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def server_class(config: LLMConfig) -> type:
    """LoraserveServer with Ray's multiplexed loader sized for this model: at most
    max_num_adapters_per_replica adapters per replica, the least recently used evicted first."""

    class Server(LoraserveServer):
        @serve.multiplexed(max_num_models_per_replica=config.max_num_adapters_per_replica)
        async def get_adapter(self, adapter: str) -> _LoadedAdapter:
            return await self._load_adapter(adapter)

    Server.__name__ = Server.__qualname__ = "LoraserveServer"
    return Server
