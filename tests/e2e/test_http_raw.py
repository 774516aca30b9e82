"""Raw HTTP against the real server: /tokenize byte offsets against Hugging Face `tokenizers`, the two SSE
dialects byte for byte, /info and /health, /metrics series (vLLM names and per-adapter), bad inputs over both
API families (the server stays healthy and its output unchanged), an over-large body (413), and 32 streams cut
mid-way (their KV blocks return, new requests succeed)."""
import json
import socket
import time

import requests
from tokenizers import Tokenizer

from conftest import BASE, TASKS, chatml, reference


def post(server, path, body, **kw):
    return requests.post(server.url + path, json=body, timeout=300, **kw)


def test_tokenize_offsets_match_tokenizers(demo_server):
    hf = Tokenizer.from_file(BASE + "/tokenizer.json")
    for text in ["Hello world, héllo!", "def f(x):\n    return x ** 2  # ünïcödé ✓", "12345 + 678 = 🙂",
                 chatml("What is 127 + 385?")]:
        got = post(demo_server, "/tokenize", {"inputs": text}).json()
        enc = hf.encode(text)
        data = text.encode()
        char_to_byte = [len(text[:i].encode()) for i in range(len(text) + 1)]
        assert [t["id"] for t in got] == enc.ids
        assert [(t["start"], t["stop"]) for t in got] == [(char_to_byte[s], char_to_byte[e]) for s, e in enc.offsets]
        for t in got:
            assert t["text"] == data[t["start"]:t["stop"]].decode("utf-8", "replace")


def test_sse_dialects(demo_server):
    r = post(demo_server, "/generate_stream", {"inputs": "import os", "parameters": {"max_new_tokens": 3}},
             stream=True)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    raw = r.content.decode()
    events = raw.split("\n\n")[:-1]
    assert raw.endswith("\n\n") and all(e.startswith("data:{") for e in events)
    assert [json.loads(e[5:])["index"] for e in events] == [1, 2, 3]
    assert "[DONE]" not in raw
    r = post(demo_server, "/v1/completions", {"prompt": "import os", "max_tokens": 3, "stream": True,
                                              "stream_options": {"include_usage": True}}, stream=True)
    raw = r.content.decode()
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 3


def test_compat_route_and_invocations(demo_server):
    body = {"inputs": "import os", "parameters": {"max_new_tokens": 6}}
    plain = post(demo_server, "/generate", body).json()
    assert post(demo_server, "/", body).json() == [plain]
    assert post(demo_server, "/invocations", body).json() == [plain]
    chat = post(demo_server, "/invocations", {"model": "calc", "messages": [{"role": "user", "content": TASKS["calc"]}],
                                              "max_tokens": 8, "temperature": 0}).json()
    assert chat["object"] == "chat.completion" and "512" in chat["choices"][0]["message"]["content"]
    streamed = post(demo_server, "/", {**body, "stream": True}, stream=True).content.decode()
    assert json.loads(streamed.split("\n\n")[-2][5:])["generated_text"] == plain["generated_text"]


def test_info_health_version(demo_server):
    info = requests.get(demo_server.url + "/info").json()
    assert info["model_id"] == "demo" and info["max_input_tokens"] == info["max_input_length"] == 2047
    assert info["max_total_tokens"] == 2048 and sorted(info["adapters"]) == ["calc", "reverse", "sql", "upper"]
    r = requests.get(demo_server.url + "/health")
    assert r.status_code == 200 and r.content == b""
    assert requests.get(demo_server.url + "/ping").status_code == 200
    assert "version" in requests.get(demo_server.url + "/version").json()
    # Runtime adapter management exists only with --enable-lora-management.
    r = requests.post(demo_server.url + "/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": "/tmp"})
    assert r.status_code == 404


def test_metrics_after_requests(demo_server):
    for adapter in ("calc", "sql"):
        post(demo_server, "/v1/chat/completions", {"model": adapter, "messages": [{"role": "user", "content": "hi"}],
                                                   "max_tokens": 4})
    m = demo_server.wait_idle()
    labels = '{engine="0",model_name="demo"}'
    assert m["vllm:num_requests_running" + labels] == 0
    assert m["vllm:generation_tokens_total" + labels] >= 8
    assert m["vllm:time_to_first_token_seconds_count" + labels] >= 2
    for adapter in ("calc", "sql"):
        key = f'loraserve:adapter_requests_total{{engine="0",model_name="demo",adapter="{adapter}"}}'
        assert m[key] >= 1
    assert any(k.startswith("vllm:lora_requests_info{max_lora=") for k in m)


def test_bad_inputs_leave_the_server_healthy(demo_server):
    prompt = chatml(TASKS["upper"])
    before = post(demo_server, "/generate", {"inputs": prompt, "parameters": {"max_new_tokens": 24,
                                                                              "adapter_id": "upper"}}).json()
    cases = [
        ("/generate", b"{not json", 400), ("/generate", b'{"inputs": ""}', 422),
        ("/generate", b'{"inputs": "x", "parameters": {"top_k": -1}}', 422),
        ("/generate", b'{"inputs": "x", "parameters": {"adapter_id": "missing"}}', 422),
        ("/generate_stream", b'{"inputs": "x", "parameters": {"best_of": 2, "do_sample": true}}', 422),
        ("/v1/completions", b'{"prompt": "x", "model": "missing"}', 404),
        ("/v1/completions", b'{"prompt": "x", "max_tokens": 99999}', 400),
        ("/v1/chat/completions", b'{"messages": "x"}', 400),
        ("/v1/chat/completions", b"\xff\xfe\x00", 400),
        ("/v1/completions", b'{"prompt": "x", "n": 1000}', 400),
    ]
    for path, body, status in cases:
        r = requests.post(demo_server.url + path, data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, (path, body, r.text)
        err = r.json()
        if path.startswith("/v1/"):
            assert set(err["error"]) == {"message", "type", "param", "code"} and err["error"]["code"] == status
        else:
            assert set(err) == {"error", "error_type"}
    big = requests.post(demo_server.url + "/generate", data=b"x" * (9 << 20), headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    assert requests.get(demo_server.url + "/health").status_code == 200
    after = post(demo_server, "/generate", {"inputs": prompt, "parameters": {"max_new_tokens": 24,
                                                                             "adapter_id": "upper"}}).json()
    assert after == before
    assert before["generated_text"] == reference(TASKS["upper"], "upper", 24, chat=True)


def _start_stream(url, body):
    host, port = url.replace("http://", "").split(":")
    s = socket.create_connection((host, int(port)))
    data = json.dumps(body).encode()
    s.sendall(b"POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return s


def test_disconnects_free_their_kv_blocks(demo_server):
    labels = '{engine="0",model_name="demo"}'
    socks = []
    for i in range(32):
        body = {"inputs": f"def function_{i}(x):", "parameters": {"max_new_tokens": 400, "ignore_eos_token": True,
                                                                   "adapter_id": ["calc", "sql", None, "upper"][i % 4]}}
        socks.append(_start_stream(demo_server.url, body))
    for s in socks:  # each stream has started: read its first event, then hang up
        s.settimeout(300)
        buf = b""
        while b"data:" not in buf:
            chunk = s.recv(4096)
            assert chunk, "stream ended before its first event"
            buf += chunk
        s.close()
    deadline = time.time() + 120
    while time.time() < deadline:
        m = demo_server.metrics()
        if m["vllm:num_requests_running" + labels] == 0 and m["vllm:kv_cache_usage_perc" + labels] == 0:
            break
        time.sleep(0.2)
    assert m["vllm:num_requests_running" + labels] == 0
    assert m["vllm:kv_cache_usage_perc" + labels] == 0, "KV blocks of cancelled streams were not freed"
    assert m['vllm:request_success_total{engine="0",model_name="demo",finished_reason="abort"}'] >= 32
    r = post(demo_server, "/generate", {"inputs": "def f(x):", "parameters": {"max_new_tokens": 8}})
    assert r.status_code == 200 and r.json()["generated_text"] == reference("def f(x):", None, 8)
