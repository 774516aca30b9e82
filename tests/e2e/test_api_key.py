"""`--api-key` (here given as LORASERVE_API_KEY): generation and model routes need `Authorization: Bearer KEY`
(TGI routes answer 401 with an empty body, OpenAI routes {"error": "Unauthorized"}); /health, /metrics and /info
stay open; the OpenAPI document then declares the bearer scheme. `--admin-key` guards the adapter management
routes instead of the API key."""
import openai
import pytest
import requests

from conftest import Server


@pytest.fixture(scope="module")
def keyed_server():
    server = Server(["--enable-lora-management", "--admin-key", "adm1n"], env={"LORASERVE_API_KEY": "s3cret"})
    yield server
    assert server.stop() == 0, "".join(server.log)


def test_routes_need_the_key(keyed_server):
    url = keyed_server.url
    r = requests.post(url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 401 and r.content == b""
    r = requests.get(url + "/v1/models")
    assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
    r = requests.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = requests.post(url + "/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 2}},
                      headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    for open_path in ("/health", "/metrics", "/info", "/openapi.json"):
        assert requests.get(url + open_path).status_code == 200, open_path
    assert "security" in requests.get(url + "/openapi.json").json()["paths"]["/generate"]["post"]


def test_openai_client_with_and_without_the_key(keyed_server):
    good = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="s3cret", max_retries=0)
    assert good.completions.create(model="demo", prompt="x", max_tokens=2).usage.completion_tokens == 2
    bad = openai.OpenAI(base_url=keyed_server.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_admin_key_guards_management(keyed_server):
    from conftest import ADAPTERS
    url = keyed_server.url + "/v1/load_lora_adapter"
    body = {"lora_name": "sql", "lora_path": ADAPTERS["sql"]}
    assert requests.post(url, json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 401
    r = requests.post(url, json=body, headers={"Authorization": "Bearer adm1n"})
    assert r.status_code == 200, r.text
    listed = requests.get(keyed_server.url + "/v1/adapters", headers={"Authorization": "Bearer s3cret"}).json()
    sql = [a for a in listed["data"] if a["name"] == "sql"]
    assert sql and sql[0]["registered"] and sql[0]["rank"] == 8 and len(sql[0]["content_hash"]) == 64
