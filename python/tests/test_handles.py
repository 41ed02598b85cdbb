"""Handle lifetime: objects are freed on the workers when the last Python
reference goes, at release() and at the end of a with block; handles may
outlive their driver and cluster."""

import gc
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import objstore
from conftest import expect_no_leaks, mem_objects, poll_until, sum_graph


def objects_become(d, counts):
    d.flush()
    return poll_until(lambda: mem_objects(d) == counts)


def test_dropping_the_last_reference_frees_the_object(d):
    x = d.put(0, np.arange(10))
    y = d.put(1, np.arange(10))
    assert mem_objects(d) == [1, 1, 0]
    copy = x  # another Python reference: same object
    del x
    assert objects_become(d, [1, 1, 0])
    del copy
    assert objects_become(d, [0, 1, 0])
    del y
    assert objects_become(d, [0, 0, 0])


def test_release_and_with_free_at_once(d):
    x = d.put(2, np.arange(3))
    part = x.part(2)  # shares the hold
    x.release()
    assert x.parties == []
    assert objects_become(d, [0, 0, 1])  # `part` still holds it
    assert list(d.fetch(part)) == [0, 1, 2]
    with part:
        pass
    assert part.parties == []
    assert objects_become(d, [0, 0, 0])
    with d.put(0, b"abc") as z:
        assert d.fetch(z) == b"abc"
    assert objects_become(d, [0, 0, 0])


def test_run_outputs_and_intermediates_are_freed(d):
    x = d.put(0, np.ones(5))
    outputs = d.run(sum_graph(), [x])
    assert mem_objects(d) == [2, 0, 0]  # input and output, no intermediates
    del outputs, x
    assert objects_become(d, [0, 0, 0])


def test_a_thousand_dropped_handles(d):
    xs = [d.put(r % 3, np.array([r])) for r in range(300)]
    assert sum(mem_objects(d)) == 300
    del xs
    assert objects_become(d, [0, 0, 0])
    assert d.stats()["live_handles"] == 0


def test_fetched_arrays_do_not_hold_objects(d):
    x = d.put(0, np.arange(4))
    a = d.fetch(x)
    del x
    assert objects_become(d, [0, 0, 0])
    assert list(a) == [0, 1, 2, 3]  # the fetched copy is the driver's


def test_handles_outliving_driver_and_cluster_do_not_crash():
    with objstore.local_cluster(workers=2) as d:
        x = d.put(0, np.arange(3))
        y = d.run(sum_graph(), [x])
        other = d.cluster.connect()
        z = other.put(1, np.arange(3))
        other.close()
        assert other.closed
    assert d.closed
    with pytest.raises(objstore.Cancelled):
        d.fetch(x)
    del d, other
    gc.collect()
    assert x.parties == [0]  # still a (dangling) handle
    del x, y, z  # releases go nowhere: no crash
    gc.collect()


def test_interpreter_exit_with_live_handles_and_runs_is_clean(tmp_path):
    script = textwrap.dedent("""
        import numpy as np
        import objstore
        from conftest import sleep_graph
        cluster = objstore.LocalCluster(2)
        d = cluster.connect()
        x = d.put(0, np.arange(3))
        run = d.submit(sleep_graph(60000), [x])
        other = objstore.connect(cluster.endpoints)
        y = other.put(1, np.arange(4))
        print("ready", flush=True)
        # exits with the cluster, drivers, a run and handles alive
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ready" in done.stdout


def test_leak_check_sees_leaks(shared_cluster):
    # The check the other tests end with must fail on a leak.
    x = shared_cluster.put(0, np.arange(2))
    with pytest.raises(AssertionError, match=r"\[1, 0, 0\]"):
        expect_no_leaks(shared_cluster, timeout=0.2)
    del x
    expect_no_leaks(shared_cluster)
