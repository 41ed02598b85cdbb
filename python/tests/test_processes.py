"""Across processes: worker processes (objstore-node) and a Python driver
process killed with SIGKILL mid-job, whose session's objects and running
task the workers drop."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import objstore
from objstore.processes import worker_processes
from conftest import poll_until, sum_graph

NODE = os.environ.get("OBJSTORE_NODE")

pytestmark = pytest.mark.skipif(
    not NODE, reason="OBJSTORE_NODE (the objstore-node binary) is not set")

CHILD = textwrap.dedent("""
    import sys
    import time
    import numpy as np
    import objstore
    d = objstore.connect(sys.argv[1])
    held = [d.put(r, np.arange(1000) + i)
            for r in range(d.world_size) for i in range(3)]
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("sleep", [x], ms=120000))
    run = d.submit(b.build(), [held[0]])  # a task running on rank 0
    print("ready", flush=True)
    time.sleep(600)
""")


@pytest.fixture(scope="module")
def workers():
    with worker_processes(NODE, 2) as w:
        yield w


@pytest.fixture
def survivor(workers):
    with objstore.connect(workers.endpoints,
                          operator_secret=workers.operator_secret) as d:
        yield d


def node_stats(d):
    return [d.worker_stats(r) for r in range(d.world_size)]


def test_python_driver_against_worker_processes(survivor):
    x = survivor.put(1, np.arange(1 << 20, dtype=np.float64))  # streamed
    (y,) = survivor.run(sum_graph(), [x])
    expected = (np.arange(1 << 20, dtype=np.float64) ** 2).sum()
    assert float(survivor.fetch(y)) == pytest.approx(expected, rel=1e-12)
    a = survivor.fetch(x)
    assert a.base.address % 64 == 0 and not a.flags.writeable
    assert survivor.stats()["streamed_fetches"] >= 1
    del x, y
    survivor.flush()
    assert poll_until(lambda: [s["mem_objects"] for s in node_stats(survivor)]
                      == [0, 0])


def test_killed_driver_process_loses_its_session_objects(workers, survivor):
    own = [survivor.put(r, np.array([r])) for r in range(2)]
    child = subprocess.Popen([sys.executable, "-c", CHILD, workers.endpoints],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        stats = node_stats(survivor)
        assert [s["mem_objects"] for s in stats] == [1 + 3, 1 + 3]
        assert [s["sessions"] for s in stats] == [2, 2]
        assert poll_until(
            lambda: survivor.worker_stats(0)["tasks_running"] == 1)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()

    def dropped():
        stats = node_stats(survivor)
        return ([s["mem_objects"] for s in stats] == [1, 1]
                and [s["sessions"] for s in stats] == [1, 1]
                and stats[0]["tasks_running"] == 0)

    assert poll_until(dropped), node_stats(survivor)
    # The survivor's objects are intact and the workers go on serving.
    assert [int(survivor.fetch(x)[0]) for x in own] == [0, 1]
    with objstore.connect(workers.endpoints) as fresh:
        assert list(fresh.fetch(fresh.put(0, np.arange(2)))) == [0, 1]
    del own
    survivor.flush()
    assert poll_until(lambda: [s["mem_objects"] for s in node_stats(survivor)]
                      == [0, 0])


def test_tenant_driver_sees_only_its_own_objects(workers, survivor):
    keep = survivor.put(0, np.arange(3))
    with objstore.connect(workers.endpoints) as tenant:
        mine = tenant.put(0, np.arange(4))
        listed = [o["uri"] for o in tenant.objects(0)]
        assert listed == [mine.uri(0)]
        assert tenant.worker_stats(0)["node_wide"] is False
        with pytest.raises(objstore.ObjstoreError):
            tenant.fetch(tenant.adopt(0, keep.uri(0)))
    del keep, mine
