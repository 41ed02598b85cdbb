"""Round trips of every dtype and shape, tables and bytes; fetched arrays
are read-only zero-copy views of the fetched value's buffer."""

import gc

import numpy as np
import pytest

import objstore

DTYPES = [np.bool_, np.int8, np.uint8, np.int32, np.int64, np.float32,
          np.float64]
SHAPES = [(), (0,), (1,), (7,), (2, 3), (0, 3), (3, 0), (2, 0, 4), (3, 1, 2),
          (2, 3, 4, 5)]


def sample(dtype, shape):
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    values = np.arange(n) * 7 - n  # negative, zero and positive
    if np.issubdtype(dtype, np.floating):
        values = values / 3.0
    return values.astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_tensor_round_trip(d, dtype, shape):
    x = sample(dtype, shape)
    h = d.put(1, x)
    assert h.parties == [1]
    y = d.fetch(h, 1)
    assert y.dtype == x.dtype
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    assert not y.flags.writeable


def test_float_specials_and_extremes_survive(d):
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.7e308])
    np.testing.assert_array_equal(d.fetch(d.put(0, x)), x)
    ints = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max])
    np.testing.assert_array_equal(d.fetch(d.put(0, ints)), ints)


def test_non_contiguous_and_foreign_byte_order_inputs(d):
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    for x in (base[:, ::2], base.T, np.asfortranarray(base),
              base.astype(">i4"), base[::-1]):
        y = d.fetch(d.put(2, x))
        np.testing.assert_array_equal(y, x)
        assert y.flags.c_contiguous
        assert y.dtype == np.int32  # native byte order
    # Python scalars and lists go through numpy.asarray.
    assert d.fetch(d.put(0, 3.5)).shape == ()
    np.testing.assert_array_equal(d.fetch(d.put(0, [1, 2, 3])), [1, 2, 3])


@pytest.mark.parametrize("x", [np.zeros(3, np.complex128),
                               np.zeros(3, np.float16),
                               np.zeros(3, np.uint32),
                               np.array(["a", "b"]),
                               np.array([object()])],
                         ids=["complex128", "float16", "uint32", "str",
                              "object"])
def test_unsupported_dtypes_are_invalid_argument(d, x):
    with pytest.raises(objstore.InvalidArgument, match="unsupported dtype"):
        d.put(0, x)


def test_table_round_trip_keeps_column_order_and_dtypes(d):
    table = {"key": np.array([3, 1, 2], np.int64),
             "amount": np.array([1.5, 2.5, -1.0]),
             "flag": np.array([True, False, True]),
             "small": np.array([-1, 0, 1], np.int8)}
    y = d.fetch(d.put(0, table))
    assert list(y) == list(table)
    for name, col in table.items():
        assert y[name].dtype == col.dtype
        np.testing.assert_array_equal(y[name], col)
        assert not y[name].flags.writeable
    # All columns view the same fetched value.
    assert len({id(c.base) for c in y.values()}) == 1


def test_empty_table_round_trip(d):
    y = d.fetch(d.put(1, {"a": np.zeros(0, np.int32),
                          "b": np.zeros(0, np.float64)}))
    assert [c.shape for c in y.values()] == [(0,), (0,)]
    assert [c.dtype for c in y.values()] == [np.int32, np.float64]


def test_bad_tables_are_rejected(d):
    with pytest.raises(objstore.InvalidArgument):
        d.put(0, {"a": np.zeros(2), "b": np.zeros(3)})  # ragged
    with pytest.raises(objstore.InvalidArgument):
        d.put(0, {"a": np.zeros((2, 2))})  # not 1-D
    with pytest.raises(TypeError):
        d.put(0, {1: np.zeros(2)})
    with pytest.raises(TypeError):
        d.put(0, "text")


@pytest.mark.parametrize("data", [b"", b"hello", bytes(range(256)) * 10],
                         ids=["empty", "text", "binary"])
def test_bytes_round_trip(d, data):
    assert d.fetch(d.put(2, data)) == data
    assert d.fetch(d.put(2, bytearray(data))) == data
    assert d.fetch(d.put(2, memoryview(data))) == data


@pytest.mark.parametrize("n", [1000, 1 << 20], ids=["actor", "streamed"])
def test_fetch_is_a_zero_copy_view_of_the_value(d, n):
    # 8 MiB streams over the data plane; 8 KB rides the actor message.
    x = np.arange(n, dtype=np.float64)
    a = d.fetch(d.put(0, x))
    base = a.base
    assert isinstance(base, objstore.ValueBuffer)
    assert base.nbytes == x.nbytes
    # The array's data is the value's buffer, which objstore aligns to 64
    # bytes: no copy was made into numpy's own memory.
    assert a.__array_interface__["data"][0] == base.address
    assert base.address % 64 == 0
    assert not a.flags.owndata
    with pytest.raises(ValueError):
        a[0] = 1.0
    # Two fetches are two values, two buffers.
    b = d.fetch(d.put(0, x))
    assert not np.shares_memory(a, b)


def test_fetched_array_outlives_driver_and_cluster():
    with objstore.local_cluster(workers=1) as d:
        a = d.fetch(d.put(0, np.arange(1 << 18, dtype=np.int64)))
        t = d.fetch(d.put(0, {"x": np.arange(5)}))
    del d
    gc.collect()
    # The value lives as long as the array does.
    assert a.sum() == (1 << 18) * ((1 << 18) - 1) // 2
    np.testing.assert_array_equal(t["x"], np.arange(5))
