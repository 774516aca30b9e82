"""conftest.py: the real `loraserve serve` for end-to-end tests.

Each test file starts its own server (module-scoped fixture) on a free port with the CPU backend and the demo
model (models/demo: a 12.6M-parameter Llama with the calc, reverse, sql and upper adapters), reads its start-up
lines until it says where it listens, and stops it with SIGTERM at the end, checking that it exits 0.
`reference()` runs `loraserve generate` (the CLI, no HTTP) for the outputs the server must reproduce.
"""
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LS_LORASERVE_BIN", os.path.join(ROOT, "build", "app", "loraserve"))
DEMO = os.path.join(ROOT, "models", "demo")
BASE = os.path.join(DEMO, "base")
ADAPTERS = {name: os.path.join(DEMO, "adapters", name) for name in ("calc", "reverse", "sql", "upper")}
# A prompt for each demo adapter's task (scripts/serve.sh uses the same ones).
TASKS = {
    "calc": "What is 127 + 385?",
    "upper": "Uppercase: the quick king eats milk",
    "reverse": "Reverse the words: small plane needs river",
    "sql": "Which books products cost less than 30 dollars?",
}


def chatml(prompt):
    """The demo model's chat template (ChatML) for one user message with the generation prompt."""
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


class Server:
    """A running `loraserve serve`; `url` is its base URL."""

    def __init__(self, args, env=None, model=BASE):
        cmd = [BIN, "serve", "--model", model, "--served-model-name", "demo", "--host", "127.0.0.1", "--port", "0",
               "--cpu-threads", "1"] + list(args)
        self.log = []
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env={**os.environ, **(env or {})})
        self.url = None
        deadline = time.time() + 120
        while self.url is None:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("loraserve serve exited during start-up:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"listening on http://([^:]+):(\d+)", line)
            if m:
                self.url = f"http://{m.group(1)}:{m.group(2)}"
            if time.time() > deadline:
                raise RuntimeError("loraserve serve did not start in 120 s:\n" + "".join(self.log))
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def metrics(self):
        """The /metrics samples as {series: value}."""
        out = {}
        for line in requests.get(self.url + "/metrics", timeout=30).text.splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                out[series] = float(value)
        return out

    def wait_idle(self, timeout=60):
        """The metrics once nothing runs or waits (the engine publishes them after its step)."""
        labels = '{engine="0",model_name="demo"}'
        deadline = time.time() + timeout
        while True:
            m = self.metrics()
            idle = m["vllm:num_requests_running" + labels] == 0 and m["vllm:num_requests_waiting" + labels] == 0
            if idle or time.time() > deadline:
                return m
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Sends sig and returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("loraserve serve did not exit after " + sig.name + ":\n" + "".join(self.log))


def all_adapter_args():
    """The demo adapters in TGI's and vLLM's spellings (two each)."""
    return ["--lora-adapters", f"calc={ADAPTERS['calc']},upper={ADAPTERS['upper']}",
            "--lora-modules", f"reverse={ADAPTERS['reverse']}",
            json.dumps({"name": "sql", "path": ADAPTERS["sql"], "base_model_name": "demo"})]


@pytest.fixture(scope="module")
def demo_server():
    server = Server(all_adapter_args())
    yield server
    assert server.stop() == 0, "".join(server.log)


_reference_cache = {}


def reference(prompt, adapter=None, max_new_tokens=32, chat=False):
    """`loraserve generate`'s greedy text for the prompt (the same engine, no HTTP)."""
    key = (prompt, adapter, max_new_tokens, chat)
    if key not in _reference_cache:
        cmd = [BIN, "generate", "--model", BASE, "--prompt", prompt, "--max-new-tokens", str(max_new_tokens)]
        if adapter:
            cmd += ["--adapter", ADAPTERS[adapter]]
        if chat:
            cmd += ["--chat"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        _reference_cache[key] = json.loads(out.stdout)["text"]
    return _reference_cache[key]
