"""Worker processes on loopback for tests, benchmarks and examples: what
.ci/local-cluster-demo does in bash.

    with worker_processes("build/apps/objstore-node", 2) as workers:
        d = objstore.connect(workers.endpoints,
                             operator_secret=workers.operator_secret)
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time


class WorkerProcesses:
    """``n`` objstore-node workers on ephemeral loopback ports, each with
    its own fs root, sharing a fresh operator secret. Stopped (SIGTERM,
    then SIGKILL) by ``stop()`` or at the end of a ``with`` block."""

    def __init__(self, node, n, fetch_policy="allow", extra_flags=(),
                 start_timeout=20.0):
        self.dir = tempfile.mkdtemp(prefix="objstore-py-workers-")
        self.operator_secret = secrets.token_hex(32)
        secret_file = os.path.join(self.dir, "operator-secret")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.operator_secret + "\n")
        self.procs = []
        ports = []
        try:
            for rank in range(n):
                root = os.path.join(self.dir, f"fs{rank}")
                os.mkdir(root)
                port_file = os.path.join(self.dir, f"port{rank}")
                log = open(os.path.join(self.dir, f"worker{rank}.log"), "w")
                self.procs.append(subprocess.Popen(
                    [node, "--objstore.role=worker", f"--objstore.rank={rank}",
                     "--objstore.port=0", f"--objstore.port-file={port_file}",
                     f'--objstore.fs-roots=["{root}"]',
                     f"--objstore.fetch-policy={fetch_policy}",
                     f"--objstore.operator-secret-file={secret_file}",
                     f"--objstore.spill-dir={self.dir}/spill",
                     *extra_flags],
                    stdout=log, stderr=subprocess.STDOUT))
                log.close()
                ports.append(port_file)
            deadline = time.monotonic() + start_timeout
            self.endpoints = ",".join(
                "127.0.0.1:" + self._wait_port(p, deadline) for p in ports)
        except BaseException:
            self.stop()
            raise

    def _wait_port(self, port_file, deadline):
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    port = f.read().strip()
                if port:
                    return port
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.02)
        raise RuntimeError("a worker did not start: " + self.logs())

    def logs(self):
        out = []
        for rank in range(len(self.procs)):
            path = os.path.join(self.dir, f"worker{rank}.log")
            if os.path.exists(path):
                with open(path) as f:
                    out.append(f"worker {rank}:\n{f.read()}")
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def worker_processes(node, n, **kwargs):
    """``WorkerProcesses(node, n, ...)``: use it in a ``with`` block."""
    return WorkerProcesses(node, n, **kwargs)
