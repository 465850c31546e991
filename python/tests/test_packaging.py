"""The Python package on its own: ``python -m build`` makes an sdist that builds a wheel without the
rest of the repository (generated protobuf code inside); the wheel installs in a fresh venv outside
the repository, whose driver joins a running cluster and runs tasks; the extras resolve.

Needs PyPI (the fresh venv installs the wheel's dependencies; ``[engine]`` is resolved with
``pip install --dry-run --report``, which reads package metadata only: no 2 GB torch download).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tsray_cluster import REPO, TsrayCluster

PYTHON_DIR = REPO / "python"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's Python path (what a user's shell has)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """An sdist built from python/, and a wheel built from that sdist unpacked outside the repository."""
    tmp = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp / "sdist"), "."], PYTHON_DIR)
    (sdist,) = (tmp / "sdist").glob("tsray-*.tar.gz")
    with tarfile.open(sdist) as t:
        t.extractall(tmp / "unpacked", filter="data")
    (src,) = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "wheel"), "."], src, _clean_env())
    (wheel,) = (tmp / "wheel").glob("tsray-*.whl")
    yield {"sdist": sdist, "src": src, "wheel": wheel, "tmp": tmp}


def test_the_sdist_carries_the_generated_protobuf_and_builds_alone(dists: dict[str, Path]) -> None:
    src = dists["src"]
    assert not (src.parent / "packages").exists()  # nothing of the repository beside it
    assert (src / "tsray" / "_proto" / "tsray_pb2.py").is_file()
    assert not (src / "tests").exists()
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    for f in ("tsray/_proto/tsray_pb2.py", "tsray/_proto/tsray_pb2.pyi", "tsray/py.typed", "tsray/util/placement_group.py"):
        assert f in names, f
    meta = next(n for n in names if n.endswith("/METADATA"))
    text = zipfile.ZipFile(dists["wheel"]).read(meta).decode()
    assert "Provides-Extra: engine" in text and "Provides-Extra: vllm" in text
    assert 'Requires-Dist: torch>=2.6; extra == "engine"' in text
    assert 'Requires-Dist: vllm>=0.20; extra == "vllm"' in text
    assert "Ray's Python API on a [tsray]" in text  # the README is the long description


def test_the_python_version_follows_the_npm_packages() -> None:
    out = subprocess.run(
        ["node", str(REPO / "tools" / "sync-python-version.mjs"), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr


def test_the_sync_writes_the_npm_version_in_pep_440_spelling(tmp_path: Path) -> None:
    # The script nx release runs after versioning (tools/nx-release/version-actions.cjs), on a copy.
    for rel in ("tools/sync-python-version.mjs", "python/pyproject.toml", "python/tsray/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((REPO / rel).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "packages" / "core").mkdir(parents=True)
    (tmp_path / "packages" / "core" / "package.json").write_text('{"version": "1.2.0-rc.1"}', encoding="utf-8")
    script = str(tmp_path / "tools" / "sync-python-version.mjs")
    assert subprocess.run(["node", script, "--check"], capture_output=True, timeout=60, check=False).returncode == 1
    _run(["node", script], tmp_path)
    assert 'version = "1.2.0rc1"' in (tmp_path / "python" / "pyproject.toml").read_text(encoding="utf-8")
    assert '__version__ = "1.2.0rc1"' in (tmp_path / "python" / "tsray" / "__init__.py").read_text(encoding="utf-8")
    assert subprocess.run(["node", script, "--check"], capture_output=True, timeout=60, check=False).returncode == 0


@pytest.fixture(scope="module")
def fresh_venv(dists: dict[str, Path]) -> Path:
    """A venv outside the repository with only the wheel (and its dependencies from PyPI) installed."""
    venv = dists["tmp"] / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], dists["tmp"], _clean_env())
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(dists["wheel"])], dists["tmp"], _clean_env())
    return py


def test_a_driver_in_a_fresh_venv_joins_a_running_cluster_and_runs_tasks(fresh_venv: Path, tmp_path: Path) -> None:
    cluster = TsrayCluster(tmp_path / "cluster", num_cpus=2, num_gpus=0)
    try:
        work = tmp_path / "app"
        work.mkdir()
        (work / "app.py").write_text(
            "import tsray\n"
            "tsray.init()\n"
            "@tsray.remote\n"
            "def square(x):\n    return x * x\n"
            "print('from', tsray.__file__)\n"
            "print('squares', tsray.get([square.remote(i) for i in range(4)]))\n",
            encoding="utf-8",
        )
        env = _clean_env(TMPDIR=str(tmp_path / "cluster"))
        stdout = _run([str(fresh_venv), "app.py"], work, env, timeout=180)
        assert f"from {fresh_venv.parent.parent}" in stdout  # the installed wheel, not the checkout
        assert "squares [0, 1, 4, 9]" in stdout
    finally:
        cluster.stop()


def test_the_engine_extra_pulls_torch_and_transformers(fresh_venv: Path, dists: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    req = f"tsray[engine] @ {dists['wheel'].as_uri()}"
    _run(
        [str(fresh_venv), "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--disable-pip-version-check",
         "--report", str(report), req],
        tmp_path, _clean_env(),
    )
    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text(encoding="utf-8"))["install"]}
    assert {"tsray", "torch", "transformers", "numpy", "pyzmq"} <= names
