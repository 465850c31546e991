"""A cluster started by ``tsray.init()`` when none runs on this machine (as ``ray.init()`` starts one).

The node is a Node.js process: this runs the ``tsray`` CLI (``tsray start --head``, from npm
``@tsray/cluster``) with the resources ``init`` was given and this interpreter for the Python workers,
and stops that head (SIGTERM, SIGKILL after a grace period) when the driver shuts down. The CLI is
``$TSRAY_CLI`` (the ``tsray`` executable or its ``cli.js``), else ``tsray`` on ``PATH``, else
``node_modules/.bin/tsray`` in the current directory or a parent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ._address import _pid_alive, _tmpdir
from .errors import ConnectionError

__all__ = ["LocalCluster", "running_local_cluster", "find_cli"]

#: Seconds the head gets to stop its workers after SIGTERM (as ``tsray stop``'s default grace).
STOP_GRACE_S = 10.0


def running_local_cluster() -> bool:
    """Whether this machine has a live cluster in ``$TMPDIR/tsray/current.json``."""
    try:
        cur = json.loads((Path(_tmpdir()) / "tsray" / "current.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
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


class LocalCluster:
    """A head this process started; :meth:`stop` ends it."""

    def __init__(self, num_cpus: float | None, num_gpus: float | None, resources: Mapping[str, float] | None) -> None:
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
        cur = json.loads((Path(_tmpdir()) / "tsray" / "current.json").read_text(encoding="utf-8"))
        self.pid = int(cur["pid"])
        self.address = str(cur["address"])

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the head (it stops its workers), SIGKILL after ``grace_s`` seconds."""
        if not _pid_alive(self.pid):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
