#!/usr/bin/env python3
"""The README's demo job (DESIGN.md §10, apps/demo_job.cpp) from Python.

Every party generates a private table (key, amount) from a seed and its
rank, filters amounts above 10 and sums them per key locally, the parties
shuffle by key worker to worker so that equal keys meet, sum again and
reveal only the per-key sums, which the driver fetches.

    PYTHONPATH=build/python /usr/bin/python3 examples/python_demo_job.py
    ... --cluster 127.0.0.1:4242,127.0.0.1:4243   # against running workers
    ... --check     # also fetch the raw tables and compare with numpy
                    # (needs a fetch policy that allows it: the local
                    # cluster is then started with `allow`)
"""

import argparse
import sys
import time

import numpy as np

import objstore

NUM_KEYS = 50


def generate(b, rows, seed):
    """Adds the party's private table (key, amount) to builder ``b``;
    returns (table, amounts)."""
    raw_keys = b.add("random_uniform", seed=seed, shape=[rows], low=0.0,
                     high=float(NUM_KEYS))
    keys = b.add("cast", [raw_keys], dtype="int64")
    amounts = b.add("random_uniform", seed=seed + 1, shape=[rows], low=0.0,
                    high=100.0)
    return b.add("make_table", [keys, amounts], names=["key", "amount"]), amounts


def local_stage(rows, seed):
    """Generate, filter (amount > 10), sum per key: one party's graph."""
    b = objstore.GraphBuilder()
    table, amounts = generate(b, rows, seed)
    ten = b.add("constant", shape=[], dtype="float64", value=10.0)
    kept = b.add("filter", [table, b.add("gt", [amounts, ten])])
    b.output(b.add("group_sum", [kept], key="key", values=["amount"]))
    return b.build()


def raw_stage(rows, seed):
    """Only the generated table (for --check)."""
    b = objstore.GraphBuilder()
    b.output(generate(b, rows, seed)[0])
    return b.build()


def final_stage():
    b = objstore.GraphBuilder()
    x = b.input()
    sums = b.add("group_sum", [x], key="key", values=["amount"])
    b.output(b.add("reveal", [sums]))
    return b.build()


def party_seed(rank, seed):
    return seed * 1000 + rank * 17


def per_party(d, make_graph):
    """A SIMP program: party r runs make_graph(r) alone (pcall_static, so
    its seed reaches no other party); converge joins the parts."""
    prog = objstore.GraphBuilder()
    parts = [prog.add("pcall_static", parties=[r], regions=[make_graph(r)])
             for r in range(d.world_size)]
    prog.output(prog.add("converge", parts))
    return d.run_simp(prog.build())[0]


def object_counts(d):
    return [d.worker_stats(r)["mem_objects"] for r in range(d.world_size)]


def counts_text(xs):
    return ", ".join(f"rank {r}: {n}" for r, n in enumerate(xs))


def run_demo(d, rows, seed):
    before = object_counts(d)
    print(f"demo: {d.world_size} parties, {rows} private rows each "
          f"(key, amount)\nobjects before: {counts_text(before)}")
    start = d.stats()
    partial = per_party(d, lambda r: local_stage(rows, party_seed(r, seed)))
    print("step 1: generated, filtered (amount > 10) and summed per key "
          "locally on every party")
    shuffled = d.shuffle_by_key(partial, "key")
    print("step 2: shuffled by key worker-to-worker (equal keys meet)")
    (revealed,) = d.run(final_stage(), [shuffled])
    print("step 3: summed per key and revealed the aggregate")
    sums = {}
    for r in range(d.world_size):
        t = d.fetch(revealed, r)  # read-only numpy views
        for k, v in zip(t["key"].tolist(), t["amount"].tolist()):
            sums[k] = sums.get(k, 0.0) + v
    held = object_counts(d)
    end = d.stats()
    del partial, shuffled, revealed  # the workers free them
    d.flush()
    deadline = time.monotonic() + 10  # releases are batched: poll
    after = object_counts(d)
    while (any(a > b for a, b in zip(after, before))
           and time.monotonic() < deadline):
        time.sleep(0.005)
        after = object_counts(d)
    received = end["bytes_received"] - start["bytes_received"]
    data_bytes = rows * d.world_size * 16
    print(f"result: {len(sums)} keys; key 0: {sums.get(0, 0.0):.2f}, "
          f"key {NUM_KEYS - 1}: {sums.get(NUM_KEYS - 1, 0.0):.2f}")
    print(f"driver received {received} bytes of control messages for "
          f"{data_bytes} bytes of table data processed on the workers")
    print(f"objects while holding handles: {counts_text(held)}")
    print(f"objects after dropping them:   {counts_text(after)}")
    return sums, after


def reference(d, rows, seed):
    """numpy over the raw tables (fetched: only under an `allow` policy)."""
    raw = per_party(d, lambda r: raw_stage(rows, party_seed(r, seed)))
    sums = {}
    for r in range(d.world_size):
        t = d.fetch(raw, r)
        keep = t["amount"] > 10.0
        keys = t["key"][keep]
        totals = np.bincount(keys, weights=t["amount"][keep],
                             minlength=NUM_KEYS)
        for k in np.unique(keys).tolist():
            sums[k] = sums.get(k, 0.0) + totals[k]
    return sums


def same_sums(x, y):
    return x.keys() == y.keys() and all(
        abs(v - y[k]) <= 1e-9 * max(1.0, abs(v)) for k, v in x.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cluster", help="workers host:port,host:port "
                        "(default: 3 workers in this process)")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.cluster:
        d = objstore.connect(args.cluster)
        cluster = None
    else:
        policy = "allow" if args.check else "revealed-only"
        cluster = objstore.local_cluster(workers=3, fetch_policy=policy)
        d = cluster.__enter__()
    try:
        sums, after = run_demo(d, args.rows, args.seed)
        ok = True
        if args.check:
            ok = same_sums(sums, reference(d, args.rows, args.seed))
            print("matches numpy over the raw tables:",
                  "yes" if ok else "NO")
        if cluster is not None:  # node-wide counts: must be back to zero
            ok = ok and after == [0] * d.world_size
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
        else:
            d.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
