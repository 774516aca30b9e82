#!/usr/bin/env python3
"""serving_bench.py: a load generator for an OpenAI-compatible server (loraserve, vLLM, TGI's /v1 routes).

Requests arrive as a Poisson process (or all at once), each for the base model or an adapter chosen by a
uniform or power-law popularity, with prompt and output lengths drawn from ranges; every request streams, and
the client records time to first token, the gaps between tokens and the end. The result is printed and saved
as JSON with the key names of vLLM's serving benchmark (benchmarks/benchmark_serving.py --save-result), so the
two can be compared side by side.

    python bench/serving_bench.py --base-url http://localhost:8080 --model models/demo/base \
        --adapters calc,reverse,sql,upper --num-prompts 200 --request-rate 8 --popularity power-law

--idle-connections N instead opens N streaming requests at once, checks that every one completes, and reports
the server's thread count and memory (from /proc, --server-pid) while they are all open.
"""
import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import time

import aiohttp

WORDS = ("the of and to in is for that with as on be by this are from it at an which or not have has was "
         "function return value list string number model adapter server token request batch memory cache "
         "python code data file error test result time line count name type class object index key map").split()


def make_prompt(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def choose_models(rng, args, adapters, n):
    """The model field of each request: base or an adapter by popularity (rank r has weight 1/r^alpha)."""
    names = [args.model] * args.base_share_weight + adapters if args.base_share_weight > 0 else list(adapters)
    if not names:
        names = [args.model]
    if args.popularity == "rotate":
        return [names[i % len(names)] for i in range(n)]
    if args.popularity == "uniform":
        weights = [1.0] * len(names)
    else:
        weights = [1.0 / (i + 1) ** args.alpha for i in range(len(names))]
    return rng.choices(names, weights=weights, k=n)


def percentile(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def one_request(session, args, model, prompt, max_tokens, out):
    body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": args.temperature,
            "stream_options": {"include_usage": True}}
    if args.ignore_eos:
        body["ignore_eos"] = True
    if args.endpoint.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    rec = {"model": model, "success": False, "ttft": 0.0, "itl": [], "latency": 0.0, "output_tokens": 0,
           "prompt_tokens": 0, "text": "", "error": ""}
    start = time.perf_counter()
    last = start
    try:
        async with session.post(args.base_url + args.endpoint, json=body) as resp:
            if resp.status != 200:
                rec["error"] = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                out.append(rec)
                return
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            continue
                        msg = json.loads(data)
                        if "error" in msg:
                            rec["error"] = json.dumps(msg["error"])[:200]
                            continue
                        if msg.get("usage"):
                            rec["output_tokens"] = msg["usage"]["completion_tokens"]
                            rec["prompt_tokens"] = msg["usage"]["prompt_tokens"]
                        for c in msg.get("choices", []):
                            piece = c.get("text") if "text" in c else (c.get("delta") or {}).get("content")
                            if not piece:
                                continue
                            now = time.perf_counter()
                            if rec["ttft"] == 0.0:
                                rec["ttft"] = now - start
                            else:
                                rec["itl"].append(now - last)
                            last = now
                            rec["text"] += piece
        rec["latency"] = time.perf_counter() - start
        rec["success"] = not rec["error"]
    except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    out.append(rec)


def server_resources(pid):
    if not pid:
        return {}
    info = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Threads", "VmRSS", "VmHWM"):
                    info[key] = value.strip()
        info["open_fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as e:
        info["error"] = str(e)
    return info


async def list_adapters(session, args):
    async with session.get(args.base_url + "/v1/models") as resp:
        data = await resp.json()
    return [m["id"] for m in data["data"] if m.get("parent")]


def summarize(args, records, duration, adapters):
    ok = [r for r in records if r["success"]]
    ttfts = [r["ttft"] for r in ok]
    itls = [x for r in ok for x in r["itl"]]
    tpots = [(r["latency"] - r["ttft"]) / (r["output_tokens"] - 1) for r in ok if r["output_tokens"] > 1]
    e2el = [r["latency"] for r in ok]
    out_tokens = sum(r["output_tokens"] for r in ok)
    in_tokens = sum(r["prompt_tokens"] for r in ok)
    result = {
        "date": time.strftime("%Y%m%d-%H%M%S"), "backend": "openai", "model_id": args.model,
        "num_prompts": args.num_prompts, "request_rate": args.request_rate, "burstiness": 1.0,
        "max_concurrency": args.max_concurrency, "popularity": args.popularity, "adapters": len(adapters),
        "duration": duration, "completed": len(ok), "failed": len(records) - len(ok),
        "total_input_tokens": in_tokens, "total_output_tokens": out_tokens,
        "request_throughput": len(ok) / duration if duration else 0.0,
        "output_throughput": out_tokens / duration if duration else 0.0,
        "total_token_throughput": (in_tokens + out_tokens) / duration if duration else 0.0,
        "input_lens": [r["prompt_tokens"] for r in records], "output_lens": [r["output_tokens"] for r in records],
        "ttfts": [r["ttft"] for r in records], "itls": [r["itl"] for r in records],
        "errors": [r["error"] for r in records],
    }
    for name, values in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2el)):
        ms = [v * 1000.0 for v in values]
        result[f"mean_{name}_ms"] = statistics.fmean(ms) if ms else 0.0
        result[f"median_{name}_ms"] = statistics.median(ms) if ms else 0.0
        result[f"std_{name}_ms"] = statistics.pstdev(ms) if ms else 0.0
        for p in args.percentiles:
            key = f"p{int(p) if float(p).is_integer() else p}_{name}_ms"
            result[key] = percentile(ms, p)
    return result


def print_table(result):
    print("============ Serving Benchmark Result ============")
    print(f"{'Successful requests:':<40}{result['completed']}")
    print(f"{'Failed requests:':<40}{result['failed']}")
    print(f"{'Benchmark duration (s):':<40}{result['duration']:.2f}")
    print(f"{'Total input tokens:':<40}{result['total_input_tokens']}")
    print(f"{'Total generated tokens:':<40}{result['total_output_tokens']}")
    print(f"{'Request throughput (req/s):':<40}{result['request_throughput']:.2f}")
    print(f"{'Output token throughput (tok/s):':<40}{result['output_throughput']:.2f}")
    print(f"{'Total Token throughput (tok/s):':<40}{result['total_token_throughput']:.2f}")
    for name, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                        ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")):
        print(f"{title:-^50}")
        for k in sorted(k for k in result if k.endswith(f"_{name}_ms") and not k.startswith("std")):
            print(f"{k:<40}{result[k]:.2f}")
    print("=" * 50)


async def run_load(args):
    rng = random.Random(args.seed)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        adapters = args.adapters.split(",") if args.adapters and args.adapters != "all" else []
        if args.adapters == "all":
            adapters = await list_adapters(session, args)
        models = choose_models(rng, args, adapters, args.num_prompts)
        lo, hi = args.prompt_words
        olo, ohi = args.output_len
        jobs = [(m, make_prompt(rng, rng.randint(lo, hi)), rng.randint(olo, ohi)) for m in models]
        if args.requests:
            with open(args.requests) as f:
                jobs = [(j["model"], j["prompt"], j["max_tokens"]) for j in json.load(f)]
        if args.dump_requests:
            with open(args.dump_requests, "w") as f:
                json.dump([{"model": m, "prompt": pr, "max_tokens": n} for m, pr, n in jobs], f)
        records, tasks = [], []
        limit = asyncio.Semaphore(args.max_concurrency) if args.max_concurrency else None

        async def limited(*a):
            if limit is None:
                return await one_request(*a)
            async with limit:
                return await one_request(*a)

        start = time.perf_counter()
        for model, prompt, n in jobs:
            tasks.append(asyncio.create_task(limited(session, args, model, prompt, n, records)))
            if args.request_rate != math.inf:
                await asyncio.sleep(rng.expovariate(args.request_rate))
        await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
    return summarize(args, records, duration, adapters)


async def run_idle(args):
    """N streaming requests open at once: all must complete; the server's threads and memory while they are."""
    rng = random.Random(args.seed)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout), connector=connector) as s:
        records = []
        before = server_resources(args.server_pid)
        tasks = [asyncio.create_task(one_request(s, args, args.model, make_prompt(rng, 8), args.output_len[0], records))
                 for _ in range(args.idle_connections)]
        await asyncio.sleep(args.idle_settle)
        during = server_resources(args.server_pid)
        start = time.perf_counter()
        await asyncio.gather(*tasks)
        after = server_resources(args.server_pid)
        ok = sum(r["success"] for r in records)
        async with s.get(args.base_url + "/health") as resp:
            healthy = resp.status == 200
    return {"idle_connections": args.idle_connections, "completed": ok, "failed": len(records) - ok,
            "drain_seconds": time.perf_counter() - start, "server_before": before, "server_during": during,
            "server_after": after, "healthy_after": healthy,
            "errors": sorted({r["error"] for r in records if r["error"]})[:10]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://localhost:8080")
    p.add_argument("--endpoint", default="/v1/completions", choices=["/v1/completions", "/v1/chat/completions"])
    p.add_argument("--model", required=True, help="the base model's served name")
    p.add_argument("--adapters", default="", help="comma-separated adapter names, or 'all' (from /v1/models)")
    p.add_argument("--base-share-weight", type=int, default=0,
                   help="how many popularity ranks the base model takes ahead of the adapters (0: adapters only)")
    p.add_argument("--num-prompts", type=int, default=100)
    p.add_argument("--request-rate", type=float, default=math.inf, help="Poisson arrivals per second (inf: all at once)")
    p.add_argument("--max-concurrency", type=int, default=0)
    p.add_argument("--popularity", choices=["uniform", "power-law", "rotate"], default="uniform",
                   help="how requests pick adapters: at random (uniform, power-law) or in turn (rotate)")
    p.add_argument("--alpha", type=float, default=1.0, help="power-law exponent")
    p.add_argument("--prompt-words", type=int, nargs=2, default=[8, 64], metavar=("MIN", "MAX"))
    p.add_argument("--output-len", type=int, nargs=2, default=[16, 128], metavar=("MIN", "MAX"))
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--ignore-eos", action="store_true", help="vLLM's ignore_eos: every request runs to its max_tokens")
    p.add_argument("--percentiles", type=float, nargs="+", default=[50, 90, 99])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--result-file", default="")
    p.add_argument("--dump-requests", default="", help="write the requests (model, prompt, max_tokens) as JSON")
    p.add_argument("--requests", default="", help="replay requests written by --dump-requests")
    p.add_argument("--idle-connections", type=int, default=0)
    p.add_argument("--idle-settle", type=float, default=2.0, help="seconds to wait before sampling the server")
    p.add_argument("--server-pid", type=int, default=0)
    args = p.parse_args()
    if args.idle_connections:
        result = asyncio.run(run_idle(args))
        print(json.dumps(result, indent=1))
    else:
        result = asyncio.run(run_load(args))
        print_table(result)
    if args.result_file:
        with open(args.result_file, "w") as f:
            json.dump(result, f)
    return 0 if result.get("failed", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
