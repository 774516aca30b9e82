"""loraserve on Ray Serve: a builder shaped like Ray Serve LLM's (`build_openai_app({"llm_configs": [...]})`).

Each replica of a model's deployment runs one `loraserve serve` process on its device and proxies the OpenAI
routes to it, streaming included. LoRA adapters are Ray Serve multiplexed models: a request for
`base_model_id:adapter` is routed with multiplexed_model_id=adapter, so Ray's router sends it to a replica that
already holds the adapter; a replica loads it into its loraserve through /v1/load_lora_adapter and unloads its
least recently used adapter through /v1/unload_lora_adapter beyond lora_config.max_num_adapters_per_replica.
"""
from loraserve_ray.config import LLMConfig, parse_llm_configs
from loraserve_ray.ingress import OpenAiIngress, build_openai_app
from loraserve_ray.server import LoraserveServer, server_class

__all__ = ["LLMConfig", "parse_llm_configs", "build_openai_app", "OpenAiIngress", "LoraserveServer", "server_class"]
