"""A cluster started by ``tsray.init()`` when none runs on this machine (as ``ray.init()`` starts one).

The node is a Node.js process: this runs the ``tsray`` CLI (``tsray start --head``, from npm
``@tsray/cluster``) with the resources ``init`` was given and this interpreter for the Python workers,
and stops that head (SIGTERM, SIGKILL after a grace period) when the driver shuts down. The CLI is
``$TSRAY_CLI`` (the ``tsray`` executable or its ``cli.js``), else ``tsray`` on ``PATH``, else
``node_modules/.bin/tsray`` in the current directory or a parent. The head's worker output
(``(Counter pid=N) ...``) is printed on this driver's terminal unless ``log_to_driver=False``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from ._address import _pid_alive, read_current, runtime_dir
from .errors import ConnectionError

__all__ = ["LocalCluster", "running_local_cluster", "find_cli"]

#: Seconds the head gets to stop its workers after SIGTERM (as ``tsray stop``'s default grace).
STOP_GRACE_S = 10.0


def running_local_cluster() -> bool:
    """Whether this machine has a live cluster in this user's ``$TMPDIR/tsray-<uid>/current.json``."""
    cur = read_current()
    return isinstance(cur, dict) and bool(cur.get("address")) and _pid_alive(int(cur.get("pid", 0) or 0))


def find_cli() -> list[str] | None:
    """The command that runs the tsray CLI, or None."""
    given = os.environ.get("TSRAY_CLI")
    if given:
        return ["node", given] if given.endswith((".js", ".mjs")) else [given]
    on_path = shutil.which("tsray")
    if on_path:
        return [on_path]
    for d in (Path.cwd(), *Path.cwd().parents):
        cand = d / "node_modules" / ".bin" / "tsray"
        if cand.exists():
            return [str(cand)]
    return None


#: A worker output line as the node prefixes it: ``(Counter pid=123) counter: 1``.
_WORKER_LINE = re.compile(r"^\([^()\n]+ pid=\d+\) ")


class _WorkerOutputTail:
    """Prints the worker output lines the head writes to its log files (``(Counter pid=N) ...``) on
    this driver's stdout / stderr, as Ray's ``log_to_driver``: a thread following the files."""

    def __init__(self, out_file: Path, err_file: Path) -> None:
        self._files = [(out_file, sys.stdout), (err_file, sys.stderr)]
        self._offsets = [0, 0]
        self._rests = ["", ""]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tsray-log-to-driver", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for i, (path, stream) in enumerate(self._files):
            try:
                with path.open("r", encoding="utf-8", errors="replace") as f:
                    f.seek(self._offsets[i])
                    chunk = f.read()
                    self._offsets[i] = f.tell()
            except OSError:
                continue
            if not chunk:
                continue
            lines = (self._rests[i] + chunk).split("\n")
            self._rests[i] = lines.pop()
            text = "".join(line + "\n" for line in lines if _WORKER_LINE.match(line))
            if text:
                stream.write(text)
                stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._drain()

    def close(self) -> None:
        """Stop following, after a last read (the head flushed its output as it exited)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()


class LocalCluster:
    """A head this process started; :meth:`stop` ends it."""

    def __init__(
        self, num_cpus: float | None, num_gpus: float | None, resources: Mapping[str, float] | None, log_to_driver: bool = True
    ) -> None:
        cli = find_cli()
        if cli is None:
            raise ConnectionError(
                "tsray.init(): no tsray cluster runs on this machine and the tsray CLI was not found to start one "
                "(npm install @tsray/cluster, or set TSRAY_CLI to its cli.js); or start one: npx tsray start --head"
            )
        args = [*cli, "start", "--head", "--port", "0", "--dashboard-port", "0"]
        if num_cpus is not None:
            args += ["--num-cpus", f"{num_cpus:g}"]
        if num_gpus is not None:
            args += ["--num-gpus", f"{num_gpus:g}"]
        if resources:
            args += ["--resources", json.dumps(dict(resources))]
        # The Python workers run this interpreter (it has tsray) unless the user chose one.
        env = {**os.environ, "TSRAY_PYTHON": os.environ.get("TSRAY_PYTHON") or sys.executable}
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            raise ConnectionError(f"tsray.init(): could not start a local cluster ({' '.join(args)}):\n{out.stdout}{out.stderr}")
        cur = read_current()
        if cur is None:
            raise ConnectionError(f"tsray.init(): the local cluster started, but {runtime_dir() / 'current.json'} is missing or not this user's")
        self.pid = int(cur["pid"])
        self.address = str(cur["address"])
        # The head's own log files (its stdout / stderr): the session folder above the node's.
        logs = Path(cur["sessionDir"]).parent / "logs"
        self._tail = _WorkerOutputTail(logs / "head-0.out", logs / "head-0.err") if log_to_driver else None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the head (it stops its workers), SIGKILL after ``grace_s`` seconds."""
        if _pid_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        if self._tail is not None:
            self._tail.close()
