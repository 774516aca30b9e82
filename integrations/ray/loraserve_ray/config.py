"""config.py: LLMConfig, the part of Ray Serve LLM's LLMConfig that loraserve uses, plus loraserve's own
engine arguments, and the `loraserve serve` command line a replica runs.

Accepted fields (Ray Serve LLM's names): model_loading_config.model_id / model_source,
lora_config.dynamic_lora_loading_path / max_num_adapters_per_replica, deployment_config (passed to
Deployment.options: autoscaling_config, num_replicas, max_ongoing_requests, health_check_period_s, ...),
accelerator_type, runtime_env, engine_kwargs (loraserve serve flags: {"max_loras": 4} is --max-loras 4, True is a
bare flag). Our own: num_gpus (per replica; default 1 with an accelerator_type, else 0 = the CPU backend),
num_cpus, loraserve_path (the binary), startup_timeout_s. Unknown keys are refused, so a typo is not silently
ignored.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

_KNOWN = {"model_loading_config", "lora_config", "deployment_config", "accelerator_type", "runtime_env",
          "engine_kwargs", "num_gpus", "num_cpus", "loraserve_path", "startup_timeout_s", "log_dir"}


@dataclass
class LLMConfig:
    model_id: str
    model_source: str
    dynamic_lora_loading_path: Optional[str] = None
    max_num_adapters_per_replica: int = 16
    deployment_config: Dict[str, Any] = field(default_factory=dict)
    accelerator_type: Optional[str] = None
    runtime_env: Optional[Dict[str, Any]] = None
    engine_kwargs: Dict[str, Any] = field(default_factory=dict)
    num_gpus: Optional[float] = None
    num_cpus: float = 1
    loraserve_path: Optional[str] = None
    startup_timeout_s: float = 300
    log_dir: Optional[str] = None  # where each replica's loraserve writes its log ("" / None: a temp dir)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LLMConfig":
        if isinstance(d, LLMConfig):
            return d
        if hasattr(d, "model_dump"):  # Ray Serve LLM's own LLMConfig object: the fields its user set
            d = d.model_dump(exclude_unset=True)
        unknown = set(d) - _KNOWN
        if unknown:
            raise ValueError(f"unknown LLMConfig fields: {sorted(unknown)}")
        mlc = d.get("model_loading_config") or {}
        if "model_id" not in mlc:
            raise ValueError("model_loading_config.model_id is required")
        lora = d.get("lora_config") or {}
        path = lora.get("dynamic_lora_loading_path")
        if path is not None:
            path = str(path).rstrip("/")
            if path.startswith(("gs://", "abfss://", "azure://")):
                raise ValueError(f"{path}: loraserve reads s3:// (and S3-compatible endpoints such as GCS's "
                                 "interoperability endpoint via AWS_ENDPOINT_URL) or local directories")
        return cls(
            model_id=mlc["model_id"],
            model_source=mlc.get("model_source") or mlc["model_id"],
            dynamic_lora_loading_path=path,
            max_num_adapters_per_replica=int(lora.get("max_num_adapters_per_replica", 16)),
            deployment_config=dict(d.get("deployment_config") or {}),
            accelerator_type=d.get("accelerator_type"),
            runtime_env=d.get("runtime_env"),
            engine_kwargs=dict(d.get("engine_kwargs") or {}),
            num_gpus=d.get("num_gpus"),
            num_cpus=float(d.get("num_cpus", 1)),
            loraserve_path=d.get("loraserve_path"),
            startup_timeout_s=float(d.get("startup_timeout_s", 300)),
            log_dir=d.get("log_dir"),
        )

    @property
    def gpus(self) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if self.accelerator_type else 0.0

    def binary(self) -> str:
        path = self.loraserve_path or shutil.which("loraserve")
        if not path:
            raise RuntimeError("loraserve binary not found: set loraserve_path in the LLMConfig or put it on PATH")
        return path

    def deployment_options(self, name: str) -> Dict[str, Any]:
        """Deployment.options() for this model's LoraserveServer deployment."""
        opts = dict(self.deployment_config)
        actor = dict(opts.pop("ray_actor_options", {}) or {})
        actor.setdefault("num_cpus", self.num_cpus)
        actor.setdefault("num_gpus", self.gpus)
        if self.accelerator_type:
            resources = dict(actor.get("resources") or {})
            resources.setdefault(f"accelerator_type:{self.accelerator_type}", 0.001)
            actor["resources"] = resources
        if self.runtime_env:
            actor.setdefault("runtime_env", self.runtime_env)
        opts["ray_actor_options"] = actor
        opts["name"] = name
        return opts

    def adapter_path(self, adapter: str) -> str:
        if not self.dynamic_lora_loading_path:
            raise LookupError(f"adapter {adapter!r} requested but lora_config.dynamic_lora_loading_path is not set")
        return f"{self.dynamic_lora_loading_path}/{adapter}"

    def serve_args(self, port: int, device: str) -> List[str]:
        """The replica's `loraserve serve` command line."""
        args = [self.binary(), "serve", "--model", self.model_source, "--served-model-name", self.model_id,
                "--host", "127.0.0.1", "--port", str(port), "--device", device, "--enable-lora-management"]
        for key, value in self.engine_kwargs.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is False or value is None:
                continue
            elif isinstance(value, (list, tuple)):
                for v in value:
                    args += [flag, str(v)]
            else:
                args += [flag, str(value)]
        if device == "cpu" and "cpu_threads" not in self.engine_kwargs:
            # The CPU backend's compute threads match the CPUs Ray reserved for the replica (0 would mean one
            # per core of the machine, which replicas sharing it would oversubscribe).
            args += ["--cpu-threads", str(max(1, int(self.num_cpus)))]
        return args


def valid_adapter_id(adapter: str) -> bool:
    """One path component of printable ASCII, as loraserve accepts adapter names under a root."""
    return (0 < len(adapter) <= 255 and adapter not in (".", "..") and
            all(0x20 < ord(c) < 0x7f and c not in "/\\%" for c in adapter))


def parse_llm_configs(builder_config: Dict[str, Any]) -> List[LLMConfig]:
    configs = builder_config.get("llm_configs")
    if not configs:
        raise ValueError('build_openai_app needs {"llm_configs": [...]}')
    out = []
    for c in configs:
        if isinstance(c, str):  # a YAML file, as Ray Serve LLM allows
            import yaml
            with open(c) as f:
                c = yaml.safe_load(f)
        out.append(LLMConfig.from_dict(c))
    ids = [c.model_id for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"model ids must be unique: {ids}")
    for i in ids:
        if ":" in i:
            raise ValueError(f"model id {i!r} must not contain ':' (it separates base and adapter)")
    return out
