"""A KV pool too small for the load (about 21 blocks of 16 tokens for 16 concurrent requests of up to 100
tokens each): the engine preempts and recomputes, and every request still completes with the output it has
when run alone."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import Server, all_adapter_args, chatml


@pytest.fixture(scope="module")
def small_kv_server():
    server = Server(all_adapter_args() + ["--kv-cache-gib", "0.002", "--max-model-len", "256"])
    yield server
    assert server.stop() == 0, "".join(server.log)


def generate(server, i):
    adapter = [None, "calc", "upper", "reverse"][i % 4]
    body = {"inputs": chatml(f"Reverse the words: plane river king milk number {i}"),
            "parameters": {"max_new_tokens": 80, "ignore_eos_token": True, "adapter_id": adapter}}
    r = requests.post(server.url + "/generate", json=body, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()["generated_text"]


def test_every_request_completes_under_preemption(small_kv_server):
    alone = [generate(small_kv_server, i) for i in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        together = list(pool.map(lambda i: generate(small_kv_server, i), range(16)))
    assert together == alone
    m = small_kv_server.wait_idle()
    assert m['vllm:num_preemptions_total{engine="0",model_name="demo"}'] > 0, "the pool was never short"
    assert m['vllm:kv_cache_usage_perc{engine="0",model_name="demo"}'] == 0
