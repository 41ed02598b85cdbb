"""Fixtures of the Python driver's tests.

Clusters listen on ephemeral loopback ports and temp dirs are pytest's
(--basetemp per ctest test), so the files may run in parallel. Nothing
here sleeps to wait for an effect: `poll_until` polls with a deadline.
"""

import gc
import time

import pytest

import objstore


def poll_until(predicate, timeout=20.0):
    """True once ``predicate()`` is true, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def mem_objects(d):
    """mem:// objects of every worker (node-wide: local_cluster drivers
    have operator access)."""
    return [d.worker_stats(r)["mem_objects"] for r in range(d.world_size)]


def expect_no_leaks(d, timeout=20.0):
    """Every worker back to zero mem:// objects within ``timeout`` seconds
    (releases are batched, so poll). Collects garbage first: a handle in a
    reference cycle (say, a frame kept by a caught exception's traceback)
    is only dropped by the collector."""
    gc.collect()
    d.flush()
    counts = []

    def zero():
        counts[:] = mem_objects(d)
        return all(c == 0 for c in counts)

    assert poll_until(zero, timeout), f"objects left on the workers: {counts}"


@pytest.fixture(scope="module")
def shared_cluster():
    """One 3-worker cluster per test file (allow policy)."""
    with objstore.local_cluster(workers=3) as d:
        yield d


@pytest.fixture
def d(shared_cluster):
    """The shared cluster's driver; each test must leave no object behind."""
    yield shared_cluster
    expect_no_leaks(shared_cluster)


def sum_graph():
    """x -> reveal(sum(x * x))."""
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("reveal", [b.add("sum", [b.add("mul", [x, x])])]))
    return b.build()


def sleep_graph(ms):
    """x -> x after ``ms`` milliseconds (cancellable)."""
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("sleep", [x], ms=ms))
    return b.build()
