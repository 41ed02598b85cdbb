"""Pending runs (wait, result, cancel, waiting on several) and threads
calling one driver at once; blocking calls release the GIL."""

import threading

import numpy as np
import pytest

import objstore
from conftest import mem_objects, poll_until, sleep_graph, sum_graph


def test_submit_then_result(d):
    x = d.put(0, np.arange(4.0))
    run = d.submit(sum_graph(), [x])
    assert run.id > 0
    assert run.wait(30) is True
    assert run.done()
    (y,) = run.result()
    assert float(d.fetch(y)) == 14.0
    (again,) = run.result()  # cached, like a future
    assert again.uri(0) == y.uri(0)
    assert run.cancel() == 0  # finished: keeps its outputs
    assert float(d.fetch(y)) == 14.0


def test_cancel_stops_a_running_run(d):
    x = d.put(1, np.arange(3))
    run = d.submit(sleep_graph(60000), [x])
    assert not run.wait(0.05)
    # The task is on a worker thread before we cancel it.
    assert poll_until(lambda: d.worker_stats(1)["tasks_running"] == 1)
    assert run.cancel() == 1
    with pytest.raises(objstore.Cancelled):
        run.result()
    with pytest.raises(objstore.Cancelled):  # the failure is cached too
        run.result()
    assert poll_until(lambda: d.worker_stats(1)["tasks_running"] == 0)
    assert mem_objects(d) == [0, 1, 0]  # only the input, no output kept


def test_result_with_timeout_raises_timeout(d):
    run = d.submit(sleep_graph(60000), [d.put(0, np.arange(1))])
    with pytest.raises(objstore.Timeout):
        run.result(timeout=0.05)
    run.cancel()


def test_failed_run_raises_from_result(d):
    b = objstore.GraphBuilder()
    b.output(b.add("bogus_op", [b.input()]))
    run = d.submit(b.build(), [d.put(2, np.arange(1))])
    with pytest.raises(objstore.OpFailed, match="bogus_op"):
        run.result()


def test_wait_on_several_runs(d):
    x = d.put(0, np.arange(3.0))
    slow = d.submit(sleep_graph(60000), [x])
    fast = [d.submit(sum_graph(), [x]) for _ in range(3)]
    ready, rest = d.wait([slow] + fast, num_returns=3, timeout=30)
    assert len(ready) == 3
    assert all(r in fast for r in ready)
    assert rest == [slow]
    ready, rest = d.wait([slow], timeout=0.05)
    assert (ready, rest) == ([], [slow])
    slow.cancel()
    ready, rest = d.wait([slow], timeout=30)
    assert ready == [slow]
    with pytest.raises(objstore.InvalidArgument):
        with objstore.local_cluster(workers=1) as other:
            d.wait([other.submit(sum_graph(), [other.put(0, 1.0)])])


def test_pending_run_outlives_its_driver():
    with objstore.local_cluster(workers=1) as d:
        run = d.submit(sleep_graph(60000), [d.put(0, np.arange(1))])
    with pytest.raises(objstore.ObjstoreError):
        run.result(timeout=30)
    del run, d


def test_threads_calling_one_driver_at_once(d):
    failures = []

    def work(seed):
        try:
            for i in range(15):
                x = np.arange(seed + i, dtype=np.float64)
                h = d.put((seed + i) % 3, x)
                (y,) = d.run(sum_graph(), [h])
                assert float(d.fetch(y)) == float((x * x).sum())
                run = d.submit(sum_graph(), [h])
                assert float(d.fetch(run.result()[0])) == float((x * x).sum())
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=work, args=(t * 100,))
               for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_blocking_calls_release_the_gil(d):
    # While another thread waits in run for a 60 s task, this thread runs
    # Python and calls the driver; it could not if the waiting call held
    # the GIL. Closing the other driver ends its call (Cancelled).
    other = d.cluster.connect()
    x = other.put(0, np.arange(3))
    started = threading.Event()
    outcome = []

    def blocked():
        started.set()
        try:
            other.run(sleep_graph(60000), [x])
            outcome.append("returned")
        except objstore.Cancelled:
            outcome.append("cancelled")

    t = threading.Thread(target=blocked)
    t.start()
    started.wait()
    assert poll_until(lambda: d.worker_stats(0)["tasks_running"] == 1)
    assert list(d.fetch(d.put(1, np.arange(2)))) == [0, 1]
    assert t.is_alive()
    other.close()
    t.join()
    assert outcome == ["cancelled"]
    del x


def test_threads_taking_one_result_at_once_all_get_it(d):
    x = d.put(2, np.arange(4.0))
    run = d.submit(sleep_graph(300), [x])
    uris = []
    failures = []

    def take():
        try:
            uris.append(run.result(timeout=30)[0].uri(2))
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(uris) == 4 and len(set(uris)) == 1
    del run
