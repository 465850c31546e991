"""``tsray gen-types`` (pythonia): a typed Python module -> a .d.ts that tsc accepts; a TS program
calling the actor through it type-checks and runs; a misspelled method fails tsc; ``--check`` fails
when the .d.ts is stale."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tsray_cluster import CLI, REPO

FIXTURE = REPO / "python" / "tests" / "fixtures" / "gentypes" / "typed_model.py"
TSC = REPO / "node_modules" / "typescript" / "bin" / "tsc"
TSX = REPO / "node_modules" / "tsx" / "dist" / "cli.mjs"


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Path]:
    """A TS project folder inside the repository (so '@tsray/core' resolves through its
    node_modules), under the git-ignored tmp/, removed afterwards; the Python module is a copy."""
    d = REPO / "tmp" / f"gen-types-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    shutil.copy(FIXTURE, d / "typed_model.py")
    (d / "package.json").write_text('{"type": "module", "private": true}\n', encoding="utf-8")
    base = os.path.relpath(REPO / "tsconfig.base.json", d)
    (d / "tsconfig.json").write_text(
        json.dumps({"extends": base, "compilerOptions": {"noEmit": True, "composite": False, "declaration": False, "declarationMap": False}, "include": ["*.ts"]}),
        encoding="utf-8",
    )
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(OSError):
            d.parent.rmdir()  # tmp/ itself, when no other run uses it


def _env(project: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "TSRAY_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), str(REPO / "python"), os.environ.get("PYTHONPATH")])),
    }


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _gen(project: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(["node", str(CLI), "gen-types", "typed_model", *extra], project, env)


PROGRAM = """
    import { get, init, python, shutdown } from '@tsray/core';
    import type { Model, add } from './typed_model.js';

    await init({ numCpus: 2, logToDriver: false });
    const model = python.actor<Model>('typed_model:Model').remote(3);
    const y = await get(model.{method}.remote(new Float64Array([1, 2])));
    const p = await get(model.classify.remote('hi', null));
    const s = await get(model.stats.remote());
    const pair: [number, string] = await get(model.pair.remote(1, 'b'));
    const addFn = python.remote<Parameters<add>, ReturnType<add>>('typed_model:add');
    const sum: number = await get(addFn.remote(2, 3));
    const label: string = p.label;
    console.log(JSON.stringify({ y: Array.from(y as Float64Array), label, count: s.count, pair, sum }));
    await shutdown();
"""


def test_declarations_typecheck_and_a_ts_program_calls_the_actor_through_them(project: Path, tmp_path: Path) -> None:
    env = _env(project, tmp_path)
    gen = _gen(project, env)
    assert gen.returncode == 0, gen.stderr
    dts = (project / "typed_model.d.ts").read_text(encoding="utf-8")
    assert "predict(x: Float64Array | NDArray): Float64Array | NDArray;" in dts
    assert "classify(text: string, threshold?: number | null): Prediction;" in dts
    assert "stats(): Promise<Stats>;" in dts
    assert "extra: Record<string, number> | null;" in dts and "count?: number;" in dts
    assert "_private" not in dts

    (project / "main.ts").write_text(textwrap.dedent(PROGRAM).replace("{method}", "predict"), encoding="utf-8")
    tsc = _run(["node", str(TSC), "-p", "tsconfig.json"], project, env)
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr

    run = _run(["node", str(TSX), "main.ts"], project, env)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"y": [3, 6], "label": "HI", "count": 2, "pair": [1, "b"], "sum": 5}


def test_a_misspelled_method_fails_tsc(project: Path, tmp_path: Path) -> None:
    env = _env(project, tmp_path)
    assert _gen(project, env).returncode == 0
    (project / "main.ts").write_text(textwrap.dedent(PROGRAM).replace("{method}", "predcit"), encoding="utf-8")
    tsc = _run(["node", str(TSC), "-p", "tsconfig.json"], project, env)
    assert tsc.returncode != 0
    assert "predcit" in tsc.stdout and "error TS" in tsc.stdout


def test_check_mode_fails_when_the_declarations_are_stale(project: Path, tmp_path: Path) -> None:
    env = _env(project, tmp_path)
    missing = _gen(project, env, "--check")
    assert missing.returncode == 1 and "missing" in missing.stderr
    assert _gen(project, env).returncode == 0
    current = _gen(project, env, "--check")
    assert current.returncode == 0, current.stderr
    with (project / "typed_model.py").open("a", encoding="utf-8") as f:
        f.write("\n\ndef added_later(x: str) -> str:\n    return x\n")
    stale = _gen(project, env, "--check")
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "tsray gen-types typed_model" in stale.stderr


def test_a_module_that_does_not_import_is_a_clear_error(project: Path, tmp_path: Path) -> None:
    out = _run(["node", str(CLI), "gen-types", "no_such_module_xyz"], project, _env(project, tmp_path))
    assert out.returncode == 1
    assert "could not describe the Python module no_such_module_xyz" in out.stderr
    assert "No module named" in out.stderr
