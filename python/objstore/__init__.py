"""objstore's driver side for Python.

    import numpy as np
    import objstore

    with objstore.local_cluster(workers=3) as d:     # or objstore.connect("h:p,h:p")
        x = d.put(0, np.arange(10.0))                # HostVar: one URI per party
        b = objstore.GraphBuilder()
        i = b.input()
        b.output(b.add("reveal", [b.add("sum", [b.add("mul", [i, i])])]))
        (y,) = d.run(b.build(), [x])                 # URIs only cross the network
        print(d.fetch(y, 0))                         # read-only numpy view: 285.0

Every blocking call releases the GIL; errors are the classes of
``objstore.errors`` (``NotFound``, ``OpFailed``, ``Timeout``, ...).
Handles are released on the workers when their last Python reference goes.
"""

import atexit
import contextlib
import weakref

from . import errors
from ._objstore import (Driver, Graph, GraphBuilder, HostVar, LocalCluster,
                        PendingRun, ValueBuffer)
from ._objstore import connect as _connect
from .errors import *  # noqa: F401,F403  (the exception classes)

__all__ = ["connect", "local_cluster", "Driver", "Graph", "GraphBuilder",
           "HostVar", "LocalCluster", "PendingRun", "ValueBuffer",
           "errors"] + errors.__all__

# Drivers and clusters still open at exit are closed before the interpreter
# tears down (their threads must not outlive it).
_open = weakref.WeakSet()


@atexit.register
def _close_all():
    for x in list(_open):
        if isinstance(x, LocalCluster):
            x.stop()
        else:
            x.close()


def connect(cluster, timeout=30.0, *, client="objstore python",
            operator_secret="", transfer_timeout=None):
    """Connects a driver to the workers ``cluster``: "host:port,host:port"
    (or a list of "host:port"), rank = position. ``timeout`` (seconds)
    bounds every remote call; ``operator_secret`` (the workers'
    objstore.operator-secret-file) gives node-wide stats and listings.
    The driver is a context manager that closes it."""
    if not isinstance(cluster, str):
        cluster = ",".join(cluster)
    d = _connect(cluster, timeout, client=client,
                 operator_secret=operator_secret,
                 transfer_timeout=transfer_timeout)
    _open.add(d)
    return d


@contextlib.contextmanager
def local_cluster(workers=3, *, fetch_policy="allow", timeout=30.0,
                  memory_limit=0, max_object_size=0, task_threads=0):
    """Starts ``workers`` worker nodes in this process (loopback, ephemeral
    ports) and yields a driver connected to them with operator access. The
    driver's ``cluster`` attribute is the LocalCluster (``endpoints`` for
    other drivers, ``kill(rank)``, ``connect()``). On exit the drivers made
    by the cluster are closed and the nodes stop."""
    cluster = LocalCluster(workers, fetch_policy, memory_limit,
                           max_object_size, task_threads)
    _open.add(cluster)
    try:
        d = cluster.connect(timeout)
        d.cluster = cluster
        with d:
            yield d
    finally:
        cluster.stop()
        _open.discard(cluster)
