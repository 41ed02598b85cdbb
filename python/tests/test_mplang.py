"""The adapter with the shape MPLang's SIMP driver needs."""

import numpy as np
import pytest

import objstore
from objstore.mplang import SimpDriverAdapter
from conftest import expect_no_leaks, mem_objects, poll_until, sleep_graph


def square():
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("mul", [x, x]))
    b.output(b.add("sum", [x]))
    return b.build()


def test_world_size_submit_fetch(d):
    adapter = SimpDriverAdapter(d)
    assert adapter.world_size == 3
    uri = adapter.put(2, np.arange(4))
    assert uri.startswith("mem://")
    task = adapter.submit(2, square(), [uri])
    squares, total = task.result(timeout=30)
    assert task.done()
    np.testing.assert_array_equal(adapter.fetch(2, squares), [0, 1, 4, 9])
    assert int(adapter.fetch(2, total)) == 6
    assert task.result() == [squares, total]
    assert mem_objects(d) == [0, 0, 3]
    adapter.release(2, uri)
    d.flush()
    assert poll_until(lambda: mem_objects(d) == [0, 0, 2])
    adapter.close()
    expect_no_leaks(d)


def test_every_party_runs_its_own_task(d):
    adapter = SimpDriverAdapter(d)
    uris = [adapter.put(r, np.full(2, r)) for r in range(3)]
    tasks = [adapter.submit(r, square(), [uris[r]]) for r in range(3)]
    totals = [int(adapter.fetch(r, t.result()[1]))
              for r, t in enumerate(tasks)]
    assert totals == [0, 2, 4]
    adapter.close()


def test_unknown_uri_and_cancel(d):
    adapter = SimpDriverAdapter(d)
    with pytest.raises(objstore.NotFound):
        adapter.submit(0, square(), ["mem://nothing"])
    uri = adapter.put(0, np.arange(2))
    with pytest.raises(objstore.NotFound):
        adapter.fetch(1, uri)  # held on rank 0, not 1
    task = adapter.submit(0, sleep_graph(60000), [uri])
    assert poll_until(lambda: d.worker_stats(0)["tasks_running"] == 1)
    assert task.cancel() == 1
    with pytest.raises(objstore.Cancelled):
        task.result()
    adapter.close()
