"""Adapters found by name under --adapter-dir on first use, through both API families: OpenAI `model`, TGI
`adapter_id`, LoRAX's adapter_source "local" (a path inside the root); a path outside the root and an unknown
name are errors, never the base model's output."""
import os

import pytest
import requests

from conftest import DEMO, TASKS, Server, chatml, reference


@pytest.fixture(scope="module")
def dir_server():
    server = Server(["--adapter-dir", os.path.join(DEMO, "adapters")])
    yield server
    assert server.stop() == 0, "".join(server.log)


def test_names_under_the_root_load_on_first_use(dir_server):
    r = requests.post(dir_server.url + "/v1/chat/completions", timeout=300, json={
        "model": "calc", "messages": [{"role": "user", "content": TASKS["calc"]}], "temperature": 0, "max_tokens": 32})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == reference(TASKS["calc"], "calc", 32, chat=True)
    r = requests.post(dir_server.url + "/generate", timeout=300, json={
        "inputs": chatml(TASKS["upper"]), "parameters": {"adapter_id": "upper", "max_new_tokens": 32}})
    assert r.status_code == 200, r.text
    assert r.json()["generated_text"] == reference(TASKS["upper"], "upper", 32, chat=True)


def test_lorax_local_source_stays_inside_the_root(dir_server):
    body = {"inputs": chatml(TASKS["reverse"]), "parameters": {"adapter_id": "reverse", "adapter_source": "local",
                                                               "max_new_tokens": 32}}
    r = requests.post(dir_server.url + "/generate", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert r.json()["generated_text"] == reference(TASKS["reverse"], "reverse", 32, chat=True)
    for escape in ("../base", "/etc", os.path.join(DEMO, "base")):
        body["parameters"]["adapter_id"] = escape
        r = requests.post(dir_server.url + "/generate", json=body, timeout=300)
        assert r.status_code == 422, (escape, r.text)
        assert r.json()["error_type"] == "validation"


def test_unknown_names_are_errors(dir_server):
    r = requests.post(dir_server.url + "/v1/completions", json={"model": "nope", "prompt": "x"}, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"
    r = requests.post(dir_server.url + "/generate", json={"inputs": "x", "parameters": {"adapter_id": "nope"}},
                      timeout=60)
    assert r.status_code == 422 and "was not found" in r.json()["error"]
