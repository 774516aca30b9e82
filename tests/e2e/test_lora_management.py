"""vLLM's runtime LoRA management (--enable-lora-management; VLLM_ALLOW_RUNTIME_LORA_UPDATING in vLLM's
spelling): /v1/load_lora_adapter and /v1/unload_lora_adapter with vLLM's plain-text successes and error shapes,
the adapter answering by name once loaded and 404 once unloaded, load_inplace, and /v1/capacity."""
import openai
import pytest
import requests

from conftest import ADAPTERS, TASKS, Server, reference


@pytest.fixture(scope="module")
def managed():
    server = Server([], env={"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true"})
    yield server
    assert server.stop() == 0, "".join(server.log)


def test_load_use_unload(managed):
    client = openai.OpenAI(base_url=managed.url + "/v1", api_key="x", max_retries=0, timeout=300)
    ask = lambda: client.chat.completions.create(model="calc", messages=[{"role": "user", "content": TASKS["calc"]}],
                                                 temperature=0, max_tokens=16).choices[0].message.content
    with pytest.raises(openai.NotFoundError):
        ask()
    r = requests.post(managed.url + "/v1/load_lora_adapter", json={"lora_name": "calc", "lora_path": ADAPTERS["calc"]})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'calc' added successfully."
    assert ask() == reference(TASKS["calc"], "calc", 16, chat=True)
    assert "calc" in {m.id for m in client.models.list().data}
    again = requests.post(managed.url + "/v1/load_lora_adapter", json={"lora_name": "calc", "lora_path": ADAPTERS["calc"]})
    assert again.status_code == 400 and again.json()["error"]["type"] == "InvalidUserInput"
    assert "has already been loaded" in again.json()["error"]["message"]
    inplace = requests.post(managed.url + "/v1/load_lora_adapter",
                            json={"lora_name": "calc", "lora_path": ADAPTERS["calc"], "load_inplace": True})
    assert inplace.status_code == 200
    r = requests.post(managed.url + "/v1/unload_lora_adapter", json={"lora_name": "calc"})
    assert r.status_code == 200 and r.text == "Success: LoRA adapter 'calc' removed successfully."
    with pytest.raises(openai.NotFoundError):
        ask()
    r = requests.post(managed.url + "/v1/unload_lora_adapter", json={"lora_name": "calc"})
    assert r.status_code == 404 and r.json()["error"]["message"] == "The lora adapter 'calc' cannot be found."


def test_bad_management_requests(managed):
    r = requests.post(managed.url + "/v1/load_lora_adapter", json={"lora_name": "x"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Both 'lora_name' and 'lora_path' must be provided."
    r = requests.post(managed.url + "/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/no/such/dir"})
    assert r.status_code == 404, r.text
    r = requests.post(managed.url + "/v1/unload_lora_adapter", json={})
    assert r.status_code == 400 and r.json()["error"]["type"] == "InvalidUserInput"


def test_capacity(managed):
    c = requests.get(managed.url + "/v1/capacity?rank=8").json()
    assert c["rank"] == 8 and c["adapter_bytes"] > 0 and c["device_slots"] >= 1 and c["kv_tokens_total"] > 0
    assert 0 <= c["device_rank_rows_free"] <= c["device_rank_rows"] and c["device_rank_rows"] >= c["device_slots"]
    assert 0 <= c["device_adapters_free"] <= c["device_slots_free"]
    assert requests.get(managed.url + "/v1/capacity?rank=0").status_code == 400
