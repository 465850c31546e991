"""A real tsray cluster for Python tests: ``tsray start --head`` in its own TMPDIR, stopped at the end.

Drivers run as real processes (:meth:`TsrayCluster.run_driver`): a script file in a temp folder,
``python script.py`` with the cluster's TMPDIR (``tsray.init()`` finds it through
``$TMPDIR/tsray-<uid>/current.json``, as a user's script does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "packages" / "cluster" / "dist" / "cli.js"


class TsrayCluster:
    """One head node started with ``--num-cpus`` / ``--num-gpus`` (GPUs without devices are fake:
    logical GPU ids handed out as CUDA_VISIBLE_DEVICES)."""

    def __init__(self, tmp: Path, num_cpus: int = 4, num_gpus: int = 2) -> None:
        if not CLI.is_file():
            raise RuntimeError(f"{CLI} is missing: build the TypeScript packages first (npx nx run-many -t build)")
        self.tmp = tmp
        self.env = {
            **os.environ,
            "TMPDIR": str(tmp),
            # The node's Python workers: this interpreter and this checkout's tsray package.
            "TSRAY_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")])),
        }
        self.env.pop("TSRAY_TOKEN", None)
        args = ["--head", "--port", "0", "--dashboard-port", "0", "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus)]
        self._cli("start", *args, timeout=90)
        self.info = json.loads((tmp / f"tsray-{os.getuid()}" / "current.json").read_text(encoding="utf-8"))

    def _cli(self, *args: str, timeout: float) -> str:
        out = subprocess.run(
            ["node", str(CLI), *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"tsray {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def run_driver(self, folder: Path, name: str, source: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Write ``source`` to ``folder/name`` and run it as a driver; the finished process."""
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / name
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        return subprocess.run(
            [sys.executable, str(script)], cwd=folder, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def stop(self) -> None:
        """``tsray stop``, then make sure the daemon is gone."""
        try:
            self._cli("stop", timeout=60)
        finally:
            pid = int(self.info.get("pid", 0))
            if pid > 0 and _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def driver_stdout(out: object, what: str = "driver") -> str:
    """The stdout of a finished driver (:meth:`TsrayCluster.run_driver`'s result); fails the test with the
    exit code, stdout and stderr when it did not exit 0. ``what`` names the driver in that message."""
    rc, stdout, stderr = getattr(out, "returncode"), getattr(out, "stdout"), getattr(out, "stderr")
    assert rc == 0, f"{what} failed ({rc}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    return str(stdout)
