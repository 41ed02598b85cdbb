#!/usr/bin/env python3
"""The Python driver against the C++ one, in the same process and run
(issue 18): prints one JSON object per workload.

- python_fetch: fetch of a float64 array of --size-mib (256) MiB from a
  worker into numpy (`Driver.fetch`: a read-only view of the fetched
  buffer) vs the C++ `driver::fetch` of the same object, timed in C++
  (`objstore._objstore._cpp_fetch_seconds`). Alternating rounds, medians.
- python_task_rtt: round trip of one tiny task whose input already lives on
  the worker (`sum` of an int64[8], as objstore-bench's task_rtt_us), a
  Python loop over `Driver.run` vs the same loop in C++
  (`_cpp_run_seconds`).

    PYTHONPATH=build/python /usr/bin/python3 bench/python_bench.py \
        --node build/apps/objstore-node      # 2 worker processes (default)
    ... --in-process                         # 2 workers in this process
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import objstore
from objstore import _objstore
from objstore.processes import worker_processes


def sum_graph():
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("sum", [x]))
    return b.build()


def bench_fetch(d, size_mib, rounds):
    n = (size_mib << 20) // 8
    x = d.put(0, np.arange(n, dtype=np.float64))
    # Warm both paths (first-touch of the receive buffers).
    d.fetch(x, 0)
    _objstore._cpp_fetch_seconds(d, x, 0, 1)
    py, cpp = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        a = d.fetch(x, 0)
        py.append(time.perf_counter() - start)
        assert a.shape == (n,) and a[-1] == n - 1
        del a
        cpp += _objstore._cpp_fetch_seconds(d, x, 0, 1)
    bytes_ = n * 8
    py_s, cpp_s = statistics.median(py), statistics.median(cpp)
    return {"workload": "python_fetch", "size_mib": size_mib,
            "rounds": rounds, "python_s": round(py_s, 4),
            "cpp_s": round(cpp_s, 4),
            "python_gbps": round(bytes_ / py_s / 1e9, 3),
            "cpp_gbps": round(bytes_ / cpp_s / 1e9, 3),
            "ratio": round(py_s / cpp_s, 3)}


def bench_task_rtt(d, samples, block):
    x = d.put(0, np.arange(1, 9, dtype=np.int64))
    g = sum_graph()
    for _ in range(100):  # warm both paths
        d.run(g, [x])
    _objstore._cpp_run_seconds(d, g, [x], 100)
    py, cpp = [], []
    while len(py) < samples:  # alternating blocks
        for _ in range(block):
            start = time.perf_counter()
            d.run(g, [x])
            py.append(time.perf_counter() - start)
        cpp += _objstore._cpp_run_seconds(d, g, [x], block)
    py_us = statistics.median(py) * 1e6
    cpp_us = statistics.median(cpp) * 1e6
    return {"workload": "python_task_rtt", "samples": len(py),
            "python_us": round(py_us, 1), "cpp_us": round(cpp_us, 1),
            "ratio": round(py_us / cpp_us, 3)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", default=os.path.join(
        os.path.dirname(__file__), "..", "build", "apps", "objstore-node"))
    parser.add_argument("--in-process", action="store_true")
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rtt-samples", type=int, default=2000)
    args = parser.parse_args()
    if args.in_process:
        with objstore.local_cluster(workers=2) as d:
            mode = "in-process"
            results = [bench_fetch(d, args.size_mib, args.rounds),
                       bench_task_rtt(d, args.rtt_samples, 100)]
    else:
        with worker_processes(args.node, 2) as workers, \
                objstore.connect(workers.endpoints) as d:
            mode = "processes"
            results = [bench_fetch(d, args.size_mib, args.rounds),
                       bench_task_rtt(d, args.rtt_samples, 100)]
    for r in results:
        r["mode"] = mode
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
