#!/usr/bin/env python3
"""ncu_steps.py: the kernels of each profiled decode step, from Nsight Compute's CSV of `engine_bench --profile-steps`.

    ncu --profile-from-start off --clock-control none --cache-control none --graph-profiling node \\
        --metrics gpu__time_duration.sum --csv engine_bench ... --profile-steps > steps.csv
    python3 bench/ncu_steps.py steps.csv [--layer N]

engine_bench replays one step per batch size and adapter mix inside its profiler range, in the order it prints them
(for each batch: base, one adapter, distinct adapters where the batch has several sequences); every step begins
with the embedding kernel. For each step the table gives each kernel's launches, total and mean microseconds (the
profiler runs the graph's nodes one at a time, so the total is the step's serial kernel time); with --layer N, also
the kernel sequence of layer N (the kernels between the N-th and (N+1)-th input norm).
"""
import argparse
import csv
import io
import re
from collections import OrderedDict
from typing import List, Tuple


def short_name(name: str) -> str:
    """A kernel's name without namespaces, arguments and template arguments (cuBLASLt's own names kept)."""
    s = name.replace("void ", "").replace("(anonymous namespace)::", "").replace("<unnamed>::", "")
    s = re.sub(r"\(.*", "", s)
    s = re.sub(r"<.*", "", s)
    return s.split("::")[-1]


def read_kernels(path: str) -> List[Tuple[str, float]]:
    """(kernel, microseconds) in launch order."""
    with open(path) as f:
        lines = f.read().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('"ID"'))
    out = []
    for row in csv.DictReader(io.StringIO("\n".join(lines[header:]))):
        if row["Metric Name"] != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(row["Metric Unit"], 1e-3)
        out.append((short_name(row["Kernel Name"]), value * scale))
    return out


def split_steps(kernels: List[Tuple[str, float]]) -> List[List[Tuple[str, float]]]:
    steps: List[List[Tuple[str, float]]] = []
    for name, us in kernels:
        if name == "embedding_kernel" or not steps:
            steps.append([])
        steps[-1].append((name, us))
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--layer", type=int, default=None, help="print this layer's kernel sequence too")
    args = ap.parse_args()
    for i, step in enumerate(split_steps(read_kernels(args.csv))):
        per = OrderedDict()
        for name, us in step:
            n, total = per.get(name, (0, 0.0))
            per[name] = (n + 1, total + us)
        print(f"step {i}: {len(step)} kernels, {sum(us for _, us in step):.1f} us")
        for name, (n, total) in sorted(per.items(), key=lambda kv: -kv[1][1]):
            print(f"  {name:40s} {n:5d} {total:10.1f} us {total / n:8.2f} us each")
        if args.layer is not None:
            norms = [j for j, (name, _) in enumerate(step) if name.startswith("rms_norm")]
            begin = norms[2 * args.layer] if 2 * args.layer < len(norms) else len(step)
            end = norms[2 * args.layer + 2] if 2 * args.layer + 2 < len(norms) else len(step)
            print("  layer", args.layer, ", ".join(f"{name} {us:.1f}" for name, us in step[begin:end]))


if __name__ == "__main__":
    main()
