"""Two hundred adapters under one --adapter-dir root on the oracle Llama model (tools/adapters/make_adapters.py:
ranks 4 to 64, six different sets of target modules), served with --max-loras 4 and --max-cpu-loras 16 under
concurrent traffic with power-law popularity through the real `openai` client: every response equals the same
request run alone with only its adapter loaded (`loraserve generate --adapter`), the host tier stays within its
budget, and the server stays healthy. Then, through raw HTTP: corrupt adapters fail their requests with a 4xx
naming the problem and are not kept, an adapter whose files change is served with the new weights from the next
request on, and vLLM's load/unload routes refuse and accept as vLLM does."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from openai import OpenAI

from conftest import BIN, ROOT, Server

MODEL = os.path.join(ROOT, "tests", "data", "oracle", "llama", "base")
MAKE = os.path.join(ROOT, "tools", "adapters", "make_adapters.py")
COUNT = 200
WORDS = "the of and to in is for that with as on be by this are from it at an which".split()


@pytest.fixture(scope="module")
def root():
    d = tempfile.mkdtemp(prefix="loraserve-many-")
    subprocess.run([sys.executable, MAKE, "--base", MODEL, "--out", d, "--count", str(COUNT), "--ranks",
                    "4,8,16,32,64", "--modules", "mixed", "--scale", "0.2"], check=True, capture_output=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(root):
    s = Server(["--adapter-dir", root, "--max-loras", "4", "--max-cpu-loras", "16", "--max-num-seqs", "16",
                "--enable-lora-management"], model=MODEL)
    yield s
    assert s.stop() == 0, "".join(s.log)


def alone(root, name, prompt, max_tokens):
    out = subprocess.run([BIN, "generate", "--model", MODEL, "--adapter", os.path.join(root, name), "--prompt", prompt,
                          "--max-new-tokens", str(max_tokens), "--ignore-eos"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["text"]


def test_power_law_traffic_over_200_adapters_equals_each_alone(root, server):
    rng = random.Random(7)
    weights = [1.0 / (i + 1) for i in range(COUNT)]
    requests_ = []
    for i in range(64):
        name = f"lora{rng.choices(range(COUNT), weights)[0]:04d}"
        requests_.append((name, " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))), rng.randint(4, 16)))
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=300)

    def send(req):
        name, prompt, n = req
        r = client.completions.create(model=name, prompt=prompt, max_tokens=n, temperature=0,
                                      extra_body={"ignore_eos": True})
        return r.choices[0].text, r.usage.completion_tokens

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(send, requests_))
    distinct = {r[0] for r in requests_}
    assert len(distinct) > 20, "the traffic was meant to touch many adapters"
    for (name, prompt, n), (text, tokens) in zip(requests_, got):
        assert tokens == n
        assert text == alone(root, name, prompt, n), f"{name} on {prompt!r}"
    m = server.wait_idle()
    listed = requests.get(server.url + "/v1/adapters", timeout=30).json()
    entries = listed["data"] if isinstance(listed, dict) else listed
    assert len(entries) >= COUNT
    in_memory = [a for a in entries if a.get("tier") in ("host", "device")]
    assert len(in_memory) <= 16, f"{len(in_memory)} adapters in host memory with --max-cpu-loras 16"
    assert requests.get(server.url + "/health", timeout=30).status_code == 200


def corrupt(root, name, how):
    d = os.path.join(root, name)
    shutil.copytree(os.path.join(root, "lora0000"), d)
    if how == "truncated":
        p = os.path.join(d, "adapter_model.safetensors")
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 3)
    elif how == "badjson":
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            f.write('{"r": 8, "target_modules": ')
    elif how == "dora":
        p = os.path.join(d, "adapter_config.json")
        cfg = json.load(open(p))
        cfg["use_dora"] = True
        json.dump(cfg, open(p, "w"))
    elif how == "otherbase":
        shutil.rmtree(d)
        shutil.copytree(os.path.join(ROOT, "models", "demo", "adapters", "sql"), d)


@pytest.mark.parametrize("how", ["truncated", "badjson", "dora", "otherbase"])
def test_corrupt_adapters_fail_clearly_and_the_server_goes_on(root, server, how):
    name = f"bad_{how}"
    corrupt(root, name, how)
    for _ in range(2):  # not cached as good: the second request is refused the same way
        r = requests.post(server.url + "/v1/completions", timeout=300,
                          json={"model": name, "prompt": "the of", "max_tokens": 4})
        assert 400 <= r.status_code < 500, r.text
        assert name in r.json()["error"]["message"]
        r = requests.post(server.url + "/generate", timeout=300,
                          json={"inputs": "the of", "parameters": {"adapter_id": name, "max_new_tokens": 4}})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error_type"]
    ok = requests.post(server.url + "/v1/completions", timeout=300,
                       json={"model": "lora0001", "prompt": "the of", "max_tokens": 4, "temperature": 0})
    assert ok.status_code == 200, ok.text


def test_changed_files_serve_new_weights_from_the_next_request(root, server):
    name = "swap"
    shutil.copytree(os.path.join(root, "lora0003"), os.path.join(root, name))
    body = {"model": name, "prompt": "the of and to", "max_tokens": 12, "temperature": 0, "ignore_eos": True}
    before = requests.post(server.url + "/v1/completions", json=body, timeout=300).json()["choices"][0]["text"]
    assert before == alone(root, "lora0003", "the of and to", 12)
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(os.path.join(root, "lora0009", f), os.path.join(root, name, f))
    after = requests.post(server.url + "/v1/completions", json=body, timeout=300).json()["choices"][0]["text"]
    assert after == alone(root, "lora0009", "the of and to", 12)
    assert after != before


def test_vllm_load_and_unload(root, server):
    url = server.url
    r = requests.post(url + "/v1/load_lora_adapter", json={"lora_name": "mine", "lora_path": os.path.join(root, "lora0005")})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'mine' added successfully.", r.text
    r = requests.post(url + "/v1/load_lora_adapter", json={"lora_name": "mine", "lora_path": os.path.join(root, "lora0006")})
    assert r.status_code == 400 and "already been loaded" in r.json()["error"]["message"]
    r = requests.post(url + "/v1/load_lora_adapter",
                      json={"lora_name": "mine", "lora_path": os.path.join(root, "lora0006"), "load_inplace": True})
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in requests.get(url + "/v1/models", timeout=30).json()["data"]]
    assert "mine" in ids
    body = {"model": "mine", "prompt": "the of", "max_tokens": 8, "temperature": 0, "ignore_eos": True}
    assert requests.post(url + "/v1/completions", json=body, timeout=300).json()["choices"][0]["text"] == \
        alone(root, "lora0006", "the of", 8)
    r = requests.post(url + "/v1/unload_lora_adapter", json={"lora_name": "mine"})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'mine' removed successfully.", r.text
    assert "mine" not in [m["id"] for m in requests.get(url + "/v1/models", timeout=30).json()["data"]]
    assert requests.post(url + "/v1/completions", json=body, timeout=300).status_code == 404
    r = requests.post(url + "/v1/unload_lora_adapter", json={"lora_name": "mine"})
    assert r.status_code == 404 and r.json()["error"]["message"] == "The lora adapter 'mine' cannot be found."
    r = requests.post(url + "/v1/load_lora_adapter", json={"lora_name": "", "lora_path": ""})
    assert r.status_code == 400 and "must be provided" in r.json()["error"]["message"]
