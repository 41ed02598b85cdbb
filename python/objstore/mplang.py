"""An adapter with the shape MPLang's SIMP driver needs from a runtime.

MPLang's driver (its ``Driver``/``DriverVar``) sends each party a program
with the URIs of its inputs, gets back the URIs of the outputs, and fetches
a party's value by URI. ``SimpDriverAdapter`` gives it exactly that on top
of an objstore driver:

    adapter = SimpDriverAdapter(driver)
    adapter.world_size                                  # number of parties
    uri = adapter.put(0, np.arange(3))                  # rank 0 holds it
    run = adapter.submit(0, graph, [uri])               # one party's task
    (out,) = run.result()                               # output URIs
    adapter.fetch(0, out)                               # numpy

The adapter holds every object it created (puts and outputs) until
``release(rank, uri)`` or ``close()``; an input URI it does not hold is
``NotFound``.
"""

from .errors import NotFound


class SubmittedTask:
    """One party's task in flight: ``result()`` gives its output URIs.
    Once it has them the adapter alone holds the outputs (``release``)."""

    def __init__(self, adapter, rank, run):
        self._adapter = adapter
        self._rank = rank
        self._run = run
        self._uris = None

    def wait(self, timeout=None):
        return self._run is None or self._run.wait(timeout)

    def done(self):
        return self._run is None or self._run.done()

    def cancel(self):
        return 0 if self._run is None else self._run.cancel()

    def result(self, timeout=None):
        if self._uris is None:
            outputs = self._run.result(timeout)
            self._uris = [self._adapter._hold(self._rank, x) for x in outputs]
            self._run = None  # it caches the outputs: drop its hold
        return list(self._uris)


class SimpDriverAdapter:
    """``world_size``, ``submit(rank, graph, inputs)`` and
    ``fetch(rank, uri)`` over an objstore ``Driver``."""

    def __init__(self, driver):
        self._driver = driver
        self._held = {}  # (rank, uri) -> HostVar of that one part

    @property
    def world_size(self):
        return self._driver.world_size

    def _hold(self, rank, x):
        part = x.part(rank)
        uri = part.uri(rank)
        self._held[(rank, uri)] = part
        return uri

    def _handle(self, rank, uri):
        try:
            return self._held[(rank, uri)]
        except KeyError:
            raise NotFound(f"rank {rank}: {uri} is not held by this "
                           "adapter") from None

    def put(self, rank, value):
        """Stores ``value`` on party ``rank``; returns its URI."""
        return self._hold(rank, self._driver.put(rank, value))

    def submit(self, rank, graph, inputs):
        """Runs ``graph`` on party ``rank`` alone with the input URIs
        ``inputs`` (held by this adapter on that party)."""
        handles = [self._handle(rank, uri) for uri in inputs]
        run = self._driver.submit(graph, handles, parties=[rank])
        return SubmittedTask(self, rank, run)

    def fetch(self, rank, uri):
        """Party ``rank``'s value of ``uri`` (the worker's fetch policy
        applies)."""
        return self._driver.fetch(self._handle(rank, uri), rank)

    def release(self, rank, uri):
        """Drops the adapter's hold on ``uri`` (the worker frees it)."""
        self._held.pop((rank, uri)).release()

    def close(self):
        """Releases everything the adapter holds."""
        for x in self._held.values():
            x.release()
        self._held.clear()
