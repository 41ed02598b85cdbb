"""The graph builder (attributes from Python values) and the orchestration
calls: run, run_simp, transfer, shuffle, shuffle_by_key."""

import numpy as np
import pytest

import objstore
from conftest import sum_graph


def constant(b, value, dtype="float64"):
    return b.add("constant", shape=[], dtype=dtype, value=value)


def test_builder_mirrors_the_cpp_one():
    b = objstore.GraphBuilder()
    x = b.input()
    y = b.input()
    s = b.add("add", [x, y])
    parts = b.add_n("hash_partition", [s], 3, key="k", n=3)
    assert len(parts) == 3
    b.output(s)
    g = b.build()
    assert g.inputs == [x, y]
    assert g.outputs == [s]
    assert g.opcodes == ["add", "hash_partition"]
    assert g.num_ops == 2
    g.validate()
    assert g == b.build()


def test_attributes_from_python_values(d):
    # ints, floats, strings and lists of each (numpy scalars and arrays
    # too) reach the kernels with their types.
    b = objstore.GraphBuilder()
    t = b.add("iota", n=np.int64(6), dtype="int64", start=1)
    m = b.add("reshape", [t], shape=np.array([2, 3]))
    r = b.add("sum", [m], axes=(1,))
    c = b.add("constant", attrs={"shape": [2], "dtype": "float64",
                                 "values": [0.5, np.float32(1.5)]})
    b.output(r)
    b.output(c)
    b.output(b.add("make_table", [r, c], names=["k", "v"]))
    rsum, cst, table = d.run(b.build(), parties=[0])
    np.testing.assert_array_equal(d.fetch(rsum), [6, 15])
    np.testing.assert_array_equal(d.fetch(cst), [0.5, 1.5])
    assert list(d.fetch(table)) == ["k", "v"]


@pytest.mark.parametrize("bad", [[1, "a"], {"a": 1}, None, object()],
                         ids=["mixed-list", "dict", "none", "object"])
def test_unsupported_attribute_types_are_type_errors(bad):
    b = objstore.GraphBuilder()
    with pytest.raises(TypeError, match="attribute 'x'"):
        b.add("identity", [], x=bad)


def test_empty_list_and_bool_attributes():
    b = objstore.GraphBuilder()
    b.add("identity", [], flags=[], on=True)  # i64 list, i64: accepted


def test_run_on_every_party_holding_the_inputs(d):
    x = d.run(sum_graph(), [d.put(1, np.arange(4.0))])[0]
    assert x.parties == [1]
    assert float(d.fetch(x)) == 14.0
    with pytest.raises(objstore.InvalidArgument):
        d.fetch(x, 0)


def test_run_simp_pcall_static_and_converge(d):
    prog = objstore.GraphBuilder()
    parts = []
    for rank in range(d.world_size):
        body = objstore.GraphBuilder()
        body.output(constant(body, float(rank * 10)))
        parts.append(prog.add("pcall_static", [], parties=[rank],
                              regions=[body.build()]))
    prog.output(prog.add("converge", parts))
    (x,) = d.run_simp(prog.build())
    assert x.parties == [0, 1, 2]
    assert [float(d.fetch(x, r)) for r in range(3)] == [0.0, 10.0, 20.0]


def test_transfer_moves_a_value_worker_to_worker(d):
    x = d.put(0, np.arange(1000, dtype=np.int32))
    y = d.transfer(x, 0, 2)
    assert y.parties == [2]
    assert y.uri(2) != x.uri(0)
    np.testing.assert_array_equal(d.fetch(y), np.arange(1000))


def test_shuffle_by_routing(d):
    b = objstore.GraphBuilder()
    b.output(b.add("iota", n=3, dtype="int64"))
    (x,) = d.run(b.build())  # on every party
    y = d.shuffle(x, [2, 0, -1])  # party 0 gets 2's, 1 gets 0's
    assert y.parties == [0, 1]
    np.testing.assert_array_equal(d.fetch(y, 0), [0, 1, 2])


def test_shuffle_by_key_is_deterministic(d):
    tables = []
    x = None
    for rank in range(3):
        t = {"key": np.array([1, 2, 3, 1], np.int64) + rank,
             "v": np.arange(4, dtype=np.float64) + 10 * rank}
        tables.append(t)
        part = d.put(rank, t)
        x = part if x is None else d.run_simp(_converge(), [x, part])[0]
    y1 = d.shuffle_by_key(x, "key")
    y2 = d.shuffle_by_key(x, "key")
    seen = {}
    for r in range(3):
        a = d.fetch(y1, r)
        b = d.fetch(y2, r)
        for name in ("key", "v"):
            np.testing.assert_array_equal(a[name], b[name])
        for k in a["key"]:
            seen.setdefault(int(k), set()).add(r)
    # Equal keys meet on one party; every row arrived.
    assert all(len(parties) == 1 for parties in seen.values())
    total = sum(len(d.fetch(y1, r)["key"]) for r in range(3))
    assert total == 12


def _converge():
    b = objstore.GraphBuilder()
    x = b.input()
    y = b.input()
    b.output(b.add("converge", [x, y]))
    return b.build()
