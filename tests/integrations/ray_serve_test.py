#!/usr/bin/env python3
"""ray_serve_test.py: loraserve on a local Ray Serve through integrations/ray (loraserve_ray.build_openai_app).

Two replicas of the CPU backend with the demo model, adapters from models/demo/adapters as Ray Serve multiplexed
models (max_num_adapters_per_replica=2), driven with the `openai` client through the OpenAI ingress:
- the base and every demo adapter answer as the transformers+peft reference in models/demo/eval (greedy),
  streaming too;
- a request for an adapter that a replica already holds goes to that replica: each loraserve's own
  /v1/adapters says who holds it and how many requests each served;
- four adapters in rotation: no loraserve ever holds more than two (its own /v1/adapters after every request);
- a replica killed mid-run (SIGKILL to the Ray worker) is replaced by Ray and the service keeps answering.
Which replica is which comes from the processes themselves (each `loraserve serve --port P` under /proc),
never from the integration's bookkeeping.
"""
import ast
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "integrations", "ray"))
os.environ["PYTHONPATH"] = os.path.join(ROOT, "integrations", "ray") + os.pathsep + os.environ.get("PYTHONPATH", "")

import openai  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402

from loraserve_ray import build_openai_app  # noqa: E402

DEMO = os.path.join(ROOT, "models", "demo")
ADAPTERS = ["calc", "reverse", "sql", "upper"]
BINARY = os.environ.get("LS_LORASERVE_BIN", os.path.join(ROOT, "build", "app", "loraserve"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eval_cases(task: str, n: int):
    with open(os.path.join(DEMO, "eval", f"{task}.json")) as f:
        data = json.load(f)
    out = []
    for p in data["prompts"][:n]:
        ref = p["adapter"] if isinstance(p["adapter"], dict) else ast.literal_eval(p["adapter"])
        base = p["base"] if isinstance(p["base"], dict) else ast.literal_eval(p["base"])
        out.append((p["prompt"], ref, base))
    return out


def loraserve_ports():
    """{port: (pid, parent pid)} of every `loraserve serve --enable-lora-management` process of BINARY (the
    replicas' own servers; other loraserve processes on this machine are not ours)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in args]
        if (len(args) > 3 and os.path.realpath(args[0]) == os.path.realpath(BINARY) and args[1] == "serve"
                and "--enable-lora-management" in args and "--port" in args):
            if stat.split(")")[-1].split()[0] == "Z":
                continue
            ppid = int(stat.split(")")[-1].split()[1])
            found[int(args[args.index("--port") + 1])] = (int(pid), ppid)
    return found


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def held(port: int):
    """{adapter name: requests served} of the adapters this loraserve holds (registered), from its /v1/adapters."""
    data = get_json(f"http://127.0.0.1:{port}/v1/adapters")
    items = data if isinstance(data, list) else data.get("data", data.get("adapters", []))
    return {a["name"]: int(a.get("requests", 0)) for a in items if a.get("registered", True)}


class RayServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t0 = time.monotonic()
        cls.tmp = tempfile.mkdtemp(prefix="ray-serve-test-")
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, _temp_dir=cls.tmp,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
        cls.port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": cls.port})
        app = build_openai_app({"llm_configs": [{
            "model_loading_config": {"model_id": "demo", "model_source": os.path.join(DEMO, "base")},
            "lora_config": {"dynamic_lora_loading_path": os.path.join(DEMO, "adapters"),
                            "max_num_adapters_per_replica": 2},
            "deployment_config": {"num_replicas": 2, "health_check_period_s": 1, "health_check_timeout_s": 10},
            "num_cpus": 1,
            "loraserve_path": BINARY,
            "log_dir": os.path.join(cls.tmp, "loraserve-logs"),
            "engine_kwargs": {"kv_cache_gib": 0.03125, "max_loras": 2, "max_num_seqs": 16},
        }]})
        serve.run(app, name="loraserve", route_prefix="/")
        cls.client = openai.OpenAI(base_url=f"http://127.0.0.1:{cls.port}/v1", api_key="unused", max_retries=0,
                                   timeout=120)
        print(f"# set-up (Ray, Serve, two replicas): {time.monotonic() - cls.t0:.1f} s", flush=True)

    @classmethod
    def tearDownClass(cls):
        serve.shutdown()
        ray.shutdown()
        print(f"# total: {time.monotonic() - cls.t0:.1f} s", flush=True)

    def chat(self, model: str, prompt: str, max_tokens: int, stream: bool = False) -> str:
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            r = self.client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                    temperature=0)
            self.assertEqual(r.model, model)
            return r.choices[0].message.content
        text = ""
        for chunk in self.client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                         temperature=0, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        return text

    def test_2_base_and_every_adapter_answer_correctly(self):
        for task in ADAPTERS:
            for prompt, ref, base in eval_cases(task, 2):
                n = len(ref["ids"])
                self.assertEqual(self.chat(f"demo:{task}", prompt, n), ref["text"], f"{task}: {prompt!r}")
                self.assertEqual(self.chat(f"demo:{task}", prompt, n, stream=True), ref["text"], f"{task} stream")
        prompt, _, base = eval_cases("upper", 1)[0]
        self.assertEqual(self.chat("demo", prompt, len(base["ids"])), base["text"])
        self.assertEqual(self.chat("demo", prompt, len(base["ids"]), stream=True), base["text"])
        # Completions too, and the ingress's errors.
        r = self.client.completions.create(model="demo:upper", prompt="Uppercase: a b", max_tokens=4, temperature=0)
        self.assertEqual(r.model, "demo:upper")
        with self.assertRaises(openai.NotFoundError):
            self.chat("other:upper", "x", 2)
        with self.assertRaises(openai.APIStatusError):
            self.chat("demo:no-such-adapter", "x", 2)

    def test_1_requests_go_to_the_replica_that_holds_the_adapter(self):
        # First on a fresh deployment: no replica holds sql yet, so exactly one loads it.
        prompt, ref, _ = eval_cases("sql", 1)[0]
        self.chat("demo:sql", prompt, 4)
        time.sleep(1.0)  # the replica's multiplexed model ids reach Ray's router
        ports = loraserve_ports()
        self.assertEqual(len(ports), 2, ports)
        holders = [p for p in ports if "sql" in held(p)]
        self.assertEqual(len(holders), 1, {p: held(p) for p in ports})
        holder, other = holders[0], next(p for p in ports if p != holders[0])
        before = held(holder)["sql"]
        for _ in range(8):
            self.assertEqual(self.chat("demo:sql", prompt, len(ref["ids"])), ref["text"])
        self.assertEqual(held(holder)["sql"], before + 8, "requests for a held adapter went elsewhere")
        self.assertNotIn("sql", held(other))

    def test_3_at_most_two_adapters_per_replica_in_rotation(self):
        cases = {t: eval_cases(t, 1)[0] for t in ADAPTERS}
        most = 0
        for i in range(16):
            task = ADAPTERS[i % 4]
            prompt, ref, _ = cases[task]
            self.assertEqual(self.chat(f"demo:{task}", prompt, len(ref["ids"])), ref["text"], task)
            for port in loraserve_ports():
                n = len(held(port))
                most = max(most, n)
                self.assertLessEqual(n, 2, f"replica on port {port} holds {held(port)}")
        self.assertEqual(most, 2)
        # Concurrent rotation: still at most two each, every answer right.
        errors = []

        def worker(k):
            try:
                for j in range(4):
                    task = ADAPTERS[(k + j) % 4]
                    prompt, ref, _ = cases[task]
                    if self.chat(f"demo:{task}", prompt, len(ref["ids"])) != ref["text"]:
                        errors.append(task)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for port in loraserve_ports():
                try:
                    self.assertLessEqual(len(held(port)), 2)
                except OSError:
                    pass
            time.sleep(0.05)
        self.assertEqual(errors, [])

    def test_4_a_killed_replica_is_replaced_and_the_service_keeps_answering(self):
        prompt, ref, _ = eval_cases("calc", 1)[0]
        before = loraserve_ports()
        self.assertEqual(len(before), 2)
        _, (victim_pid, worker_pid) = sorted(before.items())[0]
        stop = threading.Event()
        outcomes = []

        def traffic():
            while not stop.is_set():
                try:
                    outcomes.append(self.chat("demo:calc", prompt, len(ref["ids"])) == ref["text"])
                except Exception:  # noqa: BLE001
                    outcomes.append(False)

        t = threading.Thread(target=traffic)
        t.start()
        time.sleep(1.0)
        os.kill(worker_pid, signal.SIGKILL)  # the Ray replica's worker process, mid-traffic
        killed_at = time.monotonic()
        replaced = None
        while time.monotonic() - killed_at < 120:
            now = loraserve_ports()
            pids = {pid for pid, _ in now.values()}
            if len(now) == 2 and victim_pid not in pids and all(p == 200 for p in map(self._health, now)):
                replaced = time.monotonic() - killed_at
                break
            time.sleep(0.5)
        self.assertIsNotNone(replaced, f"no replacement replica within 120 s: {loraserve_ports()}")
        n = len(outcomes)
        time.sleep(3.0)
        stop.set()
        t.join()
        after = outcomes[n:]
        self.assertGreater(len(after), 3)
        self.assertTrue(all(after), f"requests after the replacement failed: {after}")
        print(f"# replica replaced {replaced:.1f} s after the kill; {outcomes.count(False)} of {len(outcomes)} "
              "requests failed meanwhile", flush=True)

    @staticmethod
    def _health(port: int) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
        except Exception:  # noqa: BLE001
            return 0


def print_logs(tmp: str) -> None:
    """After a failure: every loraserve's log and Ray Serve's warnings and errors (the controller's, the proxy's and
    the replicas'), which say whether a process died and why. The run's files stay in tmp."""
    print(f"# logs of this run: {tmp}")
    log_dir = os.path.join(tmp, "loraserve-logs")
    for name in sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []:
        with open(os.path.join(log_dir, name), errors="replace") as f:
            print(f"## {name} (last 60 lines)\n" + "".join(f.readlines()[-60:]))
    serve_dir = os.path.join(tmp, "session_latest", "logs", "serve")
    for name in sorted(os.listdir(serve_dir)) if os.path.isdir(serve_dir) else []:
        with open(os.path.join(serve_dir, name), errors="replace") as f:
            lines = [line for line in f if " WARNING " in line or " ERROR " in line or "Error" in line]
        if lines:
            print(f"## {name} (warnings and errors, last 40)\n" + "".join(lines[-40:]))


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    if failed:
        print_logs(RayServeTest.tmp)
    else:
        shutil.rmtree(RayServeTest.tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)
