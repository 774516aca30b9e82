"""64 concurrent streaming requests over the four demo adapters and the base model, with mixed prompt and
output lengths, greedy and seeded sampling, on both API families: each output must be identical to the same
request run alone (a request's tokens never depend on what shares its batch)."""
import json
import random
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import TASKS, chatml

ADAPTER_CHOICES = [None, "calc", "upper", "reverse", "sql"]
WORDS = "the quick king eats milk small plane needs river books cost less than dollars".split()


def make_requests(n=64, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        adapter = ADAPTER_CHOICES[i % len(ADAPTER_CHOICES)]
        task = TASKS.get(adapter) or "Write a function."
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 40)))
        prompt = chatml(f"{task} {words}".strip())
        sampled = i % 3 == 0
        out.append({"adapter": adapter, "prompt": prompt, "max_new_tokens": rng.randint(4, 48),
                    "openai": i % 2 == 1, "sampled": sampled, "seed": 1000 + i})
    return out


def run(server, req):
    """Streams one request; returns its text."""
    if req["openai"]:
        body = {"model": req["adapter"] or "demo", "prompt": req["prompt"], "max_tokens": req["max_new_tokens"],
                "stream": True, "temperature": 0.8 if req["sampled"] else 0, "seed": req["seed"]}
        r = requests.post(server.url + "/v1/completions", json=body, stream=True, timeout=600)
        assert r.status_code == 200, r.text
        text = ""
        for line in r.iter_lines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                event = json.loads(line[6:])
                text += "".join(c["text"] for c in event["choices"])
        return text
    params = {"max_new_tokens": req["max_new_tokens"], "adapter_id": req["adapter"]}
    if req["sampled"]:
        params.update(do_sample=True, temperature=0.8, seed=req["seed"])
    r = requests.post(server.url + "/generate_stream", json={"inputs": req["prompt"], "parameters": params},
                      stream=True, timeout=600)
    assert r.status_code == 200, r.text
    final = None
    for line in r.iter_lines():
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            assert "error" not in event, event
            if event.get("generated_text") is not None:
                final = event["generated_text"]
    return final


def test_concurrent_streams_equal_requests_run_alone(demo_server):
    reqs = make_requests()
    alone = [run(demo_server, r) for r in reqs]
    with ThreadPoolExecutor(max_workers=len(reqs)) as pool:
        together = list(pool.map(lambda r: run(demo_server, r), reqs))
    mismatches = [(i, reqs[i]["adapter"], reqs[i]["sampled"], alone[i], together[i])
                  for i in range(len(reqs)) if alone[i] != together[i]]
    assert not mismatches, f"{len(mismatches)} of {len(reqs)} differ, first: {mismatches[:3]}"
    assert all(t for t in alone)
    # The sampled requests really sample: another seed changes at least one of them.
    sampled = [i for i, r in enumerate(reqs) if r["sampled"]][:6]
    assert any(run(demo_server, dict(reqs[i], seed=reqs[i]["seed"] + 1)) != alone[i] for i in sampled)
