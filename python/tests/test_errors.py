"""Errors arrive as the exception class of their code, with the message."""

import numpy as np
import pytest

import objstore
from objstore import errors
from conftest import poll_until, sleep_graph


def test_every_code_has_its_class():
    codes = {"invalid_uri": objstore.InvalidUri,
             "unsupported_scheme": objstore.UnsupportedScheme,
             "not_found": objstore.NotFound,
             "permission_denied": objstore.PermissionDenied,
             "corrupt_data": objstore.CorruptData,
             "resource_exhausted": objstore.ResourceExhausted,
             "op_failed": objstore.OpFailed,
             "object_lost": objstore.ObjectLost,
             "timeout": objstore.Timeout,
             "unauthenticated": objstore.Unauthenticated,
             "invalid_argument": objstore.InvalidArgument,
             "io_error": objstore.IoError,
             "cancelled": objstore.Cancelled,
             "unsupported": objstore.Unsupported}
    for code, cls in codes.items():
        e = errors.from_code(code, "what")
        assert type(e) is cls
        assert isinstance(e, objstore.ObjstoreError)
        assert (e.code, e.message, str(e)) == (code, "what", f"{code}: what")
    assert type(errors.from_code("error", "x")) is objstore.ObjstoreError
    # Builtin bases for generic handlers.
    assert issubclass(objstore.Timeout, TimeoutError)
    assert issubclass(objstore.InvalidArgument, ValueError)
    assert issubclass(objstore.NotFound, LookupError)
    assert issubclass(objstore.PermissionDenied, PermissionError)


def test_unknown_op_is_op_failed_naming_the_op(d):
    b = objstore.GraphBuilder()
    b.output(b.add("no_such_op", [b.input()]))
    x = d.put(0, np.arange(3))
    with pytest.raises(objstore.OpFailed, match="no_such_op") as info:
        d.run(b.build(), [x])
    assert info.value.code == "op_failed"
    assert "no_such_op" in info.value.message


def test_kernel_error_is_op_failed_and_the_driver_goes_on(d):
    b = objstore.GraphBuilder()
    x = b.input()
    y = b.input()
    b.output(b.add("add", [x, y]))
    f = d.put(0, np.arange(3.0))
    i = d.put(0, np.arange(3))
    with pytest.raises(objstore.OpFailed, match="add"):
        d.run(b.build(), [f, i])  # mixed dtypes
    (z,) = d.run(b.build(), [f, f])
    np.testing.assert_array_equal(d.fetch(z), [0.0, 2.0, 4.0])


def test_erased_object_is_not_found(d):
    x = d.put(1, np.arange(3))
    d.erase(x, 1)
    with pytest.raises(objstore.NotFound, match=x.uri(1)):
        d.fetch(x, 1)


def test_bad_arguments(d):
    x = d.put(0, np.arange(3))
    with pytest.raises(objstore.InvalidArgument):
        d.fetch(x, 2)  # no part there
    with pytest.raises(objstore.InvalidArgument):
        d.put(7, np.arange(3))  # no such rank
    with pytest.raises(objstore.InvalidUri):
        d.put(0, np.arange(3), target="fs://relative/path")
    with pytest.raises(objstore.UnsupportedScheme):
        d.put(0, np.arange(3), target="oss://bucket/key")
    with pytest.raises(objstore.InvalidArgument):
        objstore.connect("no-port-here")
    with pytest.raises(objstore.InvalidArgument):
        objstore.connect("127.0.0.1:1", timeout=-1)


def test_connect_to_nothing_fails_fast():
    with pytest.raises(objstore.ObjstoreError):
        objstore.connect("127.0.0.1:1", timeout=5)


def test_fetch_policy_deny_is_permission_denied():
    with objstore.local_cluster(workers=1, fetch_policy="deny") as d:
        x = d.put(0, np.arange(3))
        with pytest.raises(objstore.PermissionDenied) as info:
            d.fetch(x)
        assert isinstance(info.value, PermissionError)


def test_revealed_only_policy_from_python():
    with objstore.local_cluster(workers=1,
                                fetch_policy="revealed-only") as d:
        b = objstore.GraphBuilder()
        x = b.input()
        y = b.add("mul", [x, x])
        b.output(y)
        b.output(b.add("reveal", [y]))
        hidden, shown = d.run(b.build(), [d.put(0, np.arange(3))])
        with pytest.raises(objstore.PermissionDenied):
            d.fetch(hidden)
        np.testing.assert_array_equal(d.fetch(shown), [0, 1, 4])


def test_lost_worker_is_object_lost():
    with objstore.local_cluster(workers=2) as d:
        x = d.put(1, np.arange(3))
        y = d.put(0, np.arange(3))
        d.cluster.kill(1)
        assert poll_until(lambda: d.alive(x) == [False, False])
        with pytest.raises(objstore.ObjectLost, match="rank 1"):
            d.fetch(x, 1)
        assert list(d.fetch(y)) == [0, 1, 2]  # the other party goes on


def test_call_beyond_the_timeout_is_timeout():
    with objstore.local_cluster(workers=1, timeout=0.5) as d:
        x = d.put(0, np.arange(3))
        with pytest.raises(objstore.Timeout) as info:
            d.run(sleep_graph(5000), [x])
        assert isinstance(info.value, TimeoutError)
        assert list(d.fetch(x)) == [0, 1, 2]


def test_calls_after_close_are_cancelled():
    with objstore.local_cluster(workers=1) as d:
        pass
    with pytest.raises(objstore.Cancelled, match="closed"):
        d.put(0, np.arange(3))
    d.close()  # idempotent
