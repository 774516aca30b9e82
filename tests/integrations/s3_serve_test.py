#!/usr/bin/env python3
"""s3_serve_test.py: adapters from object storage through `loraserve serve`'s HTTP routes.

s3_fixture.py starts moto's S3 server (signature checks on) with the demo adapters under s3://adapters/loras and
a proxy that breaks transfers; loraserve runs with `--adapter-dir s3://adapters/loras` and AWS_* from its
environment. Checked with the `openai` client and raw TGI requests: adapters answer by name, as base:adapter
and as LoRAX adapter_source "s3" URLs like the local copies (transformers+peft references of models/demo/eval);
a missing adapter is 404; a truncated transfer is 424 on both families; a URL outside the root is 422; a
server with a wrong secret answers 424 and writes nothing into its cache; no partial file is ever left in a cache.
"""
import ast
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import openai

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(ROOT, "models", "demo")
BINARY = os.environ.get("LS_LORASERVE_BIN", os.path.join(ROOT, "build", "app", "loraserve"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(task: str):
    with open(os.path.join(DEMO, "eval", f"{task}.json")) as f:
        p = json.load(f)["prompts"][0]
    ref = p["adapter"] if isinstance(p["adapter"], dict) else ast.literal_eval(p["adapter"])
    return p["prompt"], p["chat_text"], ref


def post(port: int, path: str, body: dict):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def files_under(d: str):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs)


class S3ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="s3-serve-test-")
        cls.fixture = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "s3_fixture.py"),
                                        "--demo", DEMO], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        cls.s3 = json.loads(cls.fixture.stdout.readline())
        cls.servers = []
        cls.good = cls.start("good", cls.s3["proxy"], cls.s3["secret_key"])
        cls.wrong = cls.start("wrong", cls.s3["endpoint"], "wrong-secret")
        cls.client = openai.OpenAI(base_url=f"http://127.0.0.1:{cls.good}/v1", api_key="unused", max_retries=0)

    @classmethod
    def start(cls, name: str, endpoint: str, secret: str) -> int:
        port = free_port()
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=cls.s3["access_key"],
                   AWS_SECRET_ACCESS_KEY=secret, AWS_REGION="us-east-1")
        with open(os.path.join(cls.tmp, f"{name}.log"), "wb") as log:
            proc = subprocess.Popen([BINARY, "serve", "--model", os.path.join(DEMO, "base"), "--served-model-name",
                                     "demo", "--host", "127.0.0.1", "--port", str(port), "--kv-cache-gib", "0.03", "--cpu-threads", "1",
                                     "--adapter-dir", "s3://adapters/loras",
                                     "--adapter-cache-dir", os.path.join(cls.tmp, f"cache-{name}")],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
        cls.servers.append(proc)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                return port
            except Exception:  # noqa: BLE001
                if proc.poll() is not None:
                    raise RuntimeError(open(os.path.join(cls.tmp, f"{name}.log")).read())
                time.sleep(0.1)
        raise TimeoutError(f"loraserve ({name}) did not start")

    @classmethod
    def tearDownClass(cls):
        for p in cls.servers:
            p.terminate()
            p.wait(timeout=30)
        cls.fixture.terminate()
        cls.fixture.wait(timeout=30)
        cls.fixture.stdout.close()

    def chat(self, model: str, prompt: str, n: int) -> str:
        r = self.client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                max_tokens=n, temperature=0)
        return r.choices[0].message.content

    def test_adapters_load_on_first_use_and_answer_like_the_local_copies(self):
        for task in ("calc", "reverse", "sql", "upper"):
            prompt, chat_text, ref = reference(task)
            self.assertEqual(self.chat(task, prompt, len(ref["ids"])), ref["text"], task)
            self.assertEqual(self.chat(f"demo:{task}", prompt, len(ref["ids"])), ref["text"], task)
            status, body = post(self.good, "/generate", {"inputs": chat_text, "parameters": {
                "adapter_id": f"s3://adapters/loras/{task}", "adapter_source": "s3",
                "max_new_tokens": len(ref["ids"])}})
            self.assertEqual((status, body.get("generated_text")), (200, ref["text"]), task)

    def test_failures_are_clear_errors_and_leave_no_partial_files(self):
        with self.assertRaises(openai.NotFoundError):
            self.chat("nosuch", "x", 2)
        with self.assertRaises(openai.APIStatusError) as e:
            self.chat("cut", "x", 2)
        self.assertEqual(e.exception.status_code, 424)
        self.assertIn("truncated transfer", str(e.exception))
        status, body = post(self.good, "/generate", {"inputs": "x", "parameters": {
            "adapter_id": "s3://adapters/loras/flip", "adapter_source": "s3", "max_new_tokens": 2}})
        self.assertEqual((status, body["error_type"]), (424, "generation"), body)
        self.assertIn("checksum mismatch", body["error"])
        status, body = post(self.good, "/generate", {"inputs": "x", "parameters": {
            "adapter_id": "s3://adapters/other/only-here", "adapter_source": "s3", "max_new_tokens": 2}})
        self.assertEqual(status, 422, body)
        for path, body in (("/v1/completions", {"model": "calc", "prompt": "x", "max_tokens": 2}),
                           ("/generate", {"inputs": "x", "parameters": {"adapter_id": "calc", "max_new_tokens": 2}})):
            status, answer = post(self.wrong, path, body)
            self.assertEqual(status, 424, answer)
            self.assertIn("SignatureDoesNotMatch", json.dumps(answer))
        self.assertEqual(files_under(os.path.join(self.tmp, "cache-wrong")), [])
        for f in files_under(os.path.join(self.tmp, "cache-good")):  # only whole, verified entries
            self.assertNotIn(".partial-", f)
            self.assertIn(os.path.basename(f), ("adapter_config.json", "adapter_model.safetensors"))
        self.assertEqual(self.chat("calc", "What is 2 + 40?", 4), "42")  # and the server goes on


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
