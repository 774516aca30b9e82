#!/usr/bin/env python3
"""ray_multiplex_bench.py: Ray Serve's multiplexed (adapter-aware) routing against plain round robin, on the same
two loraserve replicas (CPU backend, demo model), 20 adapters in rotation with power-law popularity.

  A. Ray: loraserve_ray.build_openai_app, two replicas, max_num_adapters_per_replica=4; requests for
     demo:ADAPTER go through Ray's HTTP proxy and the OpenAI ingress, and Ray's router prefers a replica that
     holds the adapter. A replica loads an adapter through /v1/load_lora_adapter and unloads its least recently
     used one beyond four.
  B. Round robin: the same two `loraserve serve` processes started directly with the adapters under
     --adapter-dir and --max-cpu-loras 4 (loaded on first use, least recently used dropped beyond four); the
     client alternates between them.

The same request list (seeded) runs against both, streaming, at a fixed concurrency. Adapter hits and loads are
counted by loraserve itself (the adapter load counter in each replica's /metrics): loads per 1,000 requests, hit
rate = 1 - loads / adapter requests; throughput and TTFT from the client (bench/serving_bench.py's request and
summary code). The 20 adapters are the four demo adapters, five copies each with a distinct adapter_config.json
(a different `revision`), so each is its own adapter (content hash) with its task's behaviour.

    .venv/bin/python bench/ray_multiplex_bench.py --loraserve build/app/loraserve --num-requests 400
"""
import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.request

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "integrations", "ray"))
import serving_bench  # noqa: E402  (one_request, choose_models, summarize)

DEMO = os.path.join(ROOT, "models", "demo")
TASKS = ["calc", "reverse", "sql", "upper"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_adapters(out: str, copies: int):
    names = []
    for task in TASKS:
        for k in range(copies):
            name = f"{task}-{k}"
            d = os.path.join(out, name)
            os.makedirs(d)
            shutil.copy(os.path.join(DEMO, "adapters", task, "adapter_model.safetensors"), d)
            cfg = json.load(open(os.path.join(DEMO, "adapters", task, "adapter_config.json")))
            cfg["revision"] = f"copy-{k}"
            json.dump(cfg, open(os.path.join(d, "adapter_config.json"), "w"), indent=1)
            names.append(name)
    return names


def make_jobs(names, n, alpha, max_tokens, seed):
    rng = random.Random(seed)
    ranked = list(names)
    rng.shuffle(ranked)  # popularity rank independent of the task
    args = types.SimpleNamespace(model="", base_share_weight=0, popularity="power-law", alpha=alpha)
    prompts = {t: [p["prompt"] for p in json.load(open(os.path.join(DEMO, "eval", f"{t}.json")))["prompts"]]
               for t in TASKS}
    jobs = []
    for name in serving_bench.choose_models(rng, args, ranked, n):
        task = name.rsplit("-", 1)[0]
        jobs.append((name, rng.choice(prompts[task]), max_tokens))
    return jobs


def adapter_loads(port: int) -> float:
    """The adapter load counter of one loraserve's /metrics (successful loads, all adapters)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total, found = 0.0, False
    pattern = re.compile(r"^(loraserve:|loraserve_)?adapter_loads(_total)?(\{[^}]*\})? ([0-9.eE+-]+)$")
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            total += float(m.group(4))
            found = True
    if not found:
        raise RuntimeError(f"no adapter load counter (loraserve:adapter_loads_total) in :{port}/metrics")
    return total


def loraserve_ports(binary):
    ports = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode() for a in f.read().split(b"\0")]
        except OSError:
            continue
        if len(args) > 3 and os.path.realpath(args[0]) == os.path.realpath(binary) and args[1] == "serve":
            ports.append(int(args[args.index("--port") + 1]))
    return ports


async def drive(jobs, urls, concurrency, model_prefix):
    """Runs the jobs at `concurrency`, request i to urls[i % len(urls)]; returns serving_bench records."""
    records = []
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i, job):
            name, prompt, n = job
            a = types.SimpleNamespace(base_url=urls[i % len(urls)], endpoint="/v1/chat/completions",
                                      temperature=0.0, ignore_eos=True)
            async with limit:
                await serving_bench.one_request(session, a, model_prefix + name, prompt, n, records)

        start = time.perf_counter()
        await asyncio.gather(*(one(i, j) for i, j in enumerate(jobs)))
        return records, time.perf_counter() - start


def report(label, records, duration, loads, n_adapters, jobs):
    a = types.SimpleNamespace(model="demo", num_prompts=len(jobs), request_rate=float("inf"), max_concurrency=0,
                              popularity="power-law", percentiles=[50, 99])
    s = serving_bench.summarize(a, records, duration, list(range(n_adapters)))
    out = {"setup": label, "requests": len(jobs), "completed": s["completed"], "failed": s["failed"],
           "adapter_loads": loads, "loads_per_1000": 1000.0 * loads / len(jobs),
           "hit_rate": 1.0 - loads / len(jobs), "request_throughput": s["request_throughput"],
           "output_throughput": s["output_throughput"], "ttft_p50_ms": s["p50_ttft_ms"],
           "ttft_p99_ms": s["p99_ttft_ms"], "duration_s": duration,
           "errors": sorted({e for e in s["errors"] if e})[:3]}
    print(json.dumps(out), flush=True)
    return out


def run_ray(args, adapter_dir, jobs, n_adapters, engine_kwargs):
    import ray
    from ray import serve
    from loraserve_ray import build_openai_app
    os.environ["PYTHONPATH"] = os.path.join(ROOT, "integrations", "ray") + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_openai_app({"llm_configs": [{
        "model_loading_config": {"model_id": "demo", "model_source": os.path.join(DEMO, "base")},
        "lora_config": {"dynamic_lora_loading_path": adapter_dir, "max_num_adapters_per_replica": args.per_replica},
        "deployment_config": {"num_replicas": 2, "max_ongoing_requests": 64},
        "num_cpus": 1, "loraserve_path": args.loraserve, "engine_kwargs": engine_kwargs,
    }]}), name="bench", route_prefix="/")
    try:
        ports = loraserve_ports(args.loraserve)
        before = sum(adapter_loads(p) for p in ports)
        records, duration = asyncio.run(drive(jobs, [f"http://127.0.0.1:{port}"], args.concurrency, "demo:"))
        loads = sum(adapter_loads(p) for p in ports) - before
        return report("ray-multiplexed", records, duration, loads, n_adapters, jobs)
    finally:
        serve.shutdown()
        ray.shutdown()


def run_round_robin(args, adapter_dir, jobs, n_adapters, engine_kwargs, log_dir):
    procs, ports = [], []
    try:
        for i in range(2):
            port = free_port()
            cmd = [args.loraserve, "serve", "--model", os.path.join(DEMO, "base"), "--served-model-name", "demo",
                   "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--adapter-dir", adapter_dir,
                   "--max-cpu-loras", str(args.per_replica), "--cpu-threads", "1"]
            for k, v in engine_kwargs.items():
                cmd += ["--" + k.replace("_", "-"), str(v)]
            log = open(os.path.join(log_dir, f"rr-{i}.log"), "wb")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            ports.append(port)
        for port in ports:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except Exception:  # noqa: BLE001
                    time.sleep(0.2)
        before = sum(adapter_loads(p) for p in ports)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        records, duration = asyncio.run(drive(jobs, urls, args.concurrency, ""))
        loads = sum(adapter_loads(p) for p in ports) - before
        return report("round-robin", records, duration, loads, n_adapters, jobs)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loraserve", default=os.path.join(ROOT, "build", "app", "loraserve"))
    p.add_argument("--num-requests", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--copies", type=int, default=5, help="copies of each demo adapter (4 x 5 = 20 adapters)")
    p.add_argument("--per-replica", type=int, default=4, help="max_num_adapters_per_replica / --max-cpu-loras")
    p.add_argument("--alpha", type=float, default=1.0, help="power-law exponent (rank r has weight 1/r^alpha)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["ray", "round-robin"], default=None)
    p.add_argument("--result-file", default="")
    args = p.parse_args()
    args.loraserve = os.path.abspath(args.loraserve)
    work = tempfile.mkdtemp(prefix="ray-bench-")
    adapter_dir = os.path.join(work, "adapters")
    names = make_adapters(adapter_dir, args.copies)
    jobs = make_jobs(names, args.num_requests, args.alpha, args.max_tokens, args.seed)
    engine_kwargs = {"kv_cache_gib": 0.0625, "max_loras": args.per_replica, "max_num_seqs": 32}
    results = []
    if args.only != "round-robin":
        results.append(run_ray(args, adapter_dir, jobs, len(names), engine_kwargs))
    if args.only != "ray":
        results.append(run_round_robin(args, adapter_dir, jobs, len(names), engine_kwargs, work))
    print(f"{'setup':<18}{'hit rate':>9}{'loads/1k':>10}{'req/s':>8}{'tok/s':>8}{'TTFT p50':>10}{'TTFT p99':>10}")
    for r in results:
        print(f"{r['setup']:<18}{r['hit_rate']:>9.3f}{r['loads_per_1000']:>10.1f}{r['request_throughput']:>8.2f}"
              f"{r['output_throughput']:>8.1f}{r['ttft_p50_ms']:>9.1f}ms{r['ttft_p99_ms']:>8.1f}ms")
    if args.result_file:
        json.dump({"args": vars(args), "results": results}, open(args.result_file, "w"), indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
