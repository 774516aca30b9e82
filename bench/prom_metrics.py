#!/usr/bin/env python3
"""prom_metrics.py: snapshots of a server's Prometheus /metrics and their differences, for the bench scripts.

    python3 bench/prom_metrics.py snapshot URL FILE [PREFIX...]   # saves the samples whose names start with a PREFIX
    from prom_metrics import read, diff                            # {name: value} with labels summed, and after - before

A snapshot is the exposition text's sample lines as the server wrote them, so a run's files show what was read.
"""
import sys
import urllib.request
from typing import Dict, Iterable


def snapshot(url: str, path: str, prefixes: Iterable[str] = ()) -> None:
    prefixes = tuple(prefixes)
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=30) as r:
        text = r.read().decode()
    lines = [line for line in text.splitlines()
             if line and not line.startswith("#") and (not prefixes or line.startswith(prefixes))]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read(path: str, per_label: bool = False) -> Dict[str, float]:
    """{metric name: value} of a snapshot; samples of one name with different labels are summed unless per_label."""
    vals: Dict[str, float] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            name = parts[0] if per_label else parts[0].split("{")[0]
            vals[name] = vals.get(name, 0.0) + float(parts[-1])
    return vals


def diff(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, float]:
    """after - before for every counter in after (gauges and maxima are not differences: callers read after)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "snapshot":
        sys.exit(__doc__)
    snapshot(sys.argv[2], sys.argv[3], sys.argv[4:])
