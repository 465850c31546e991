"""``@tsray.remote`` at the edge (no cluster): options checked with the option named, targets, the
runtime env JSON the node reads, and the worker's definitions-only import of a driver script."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tsray
from tsray._main_defs import load_definitions
from tsray._options import runtime_env_json
from tsray._remote import target_of


@tsray.remote(num_cpus=2)
def module_level(x: int) -> int:
    return x


class Plain:
    def method(self) -> None:
        pass


def test_a_module_function_is_named_by_module_and_qualified_name() -> None:
    assert repr(module_level) == "RemoteFunction(py:test_remote_options:module_level#0)"
    with pytest.raises(TypeError, match="cannot be called directly"):
        module_level(1)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"num_gpu": 1}, ValueError, "invalid option keyword 'num_gpu'"),
        ({"num_cpus": -1}, ValueError, "'num_cpus' must be a number >= 0"),
        ({"num_returns": "many"}, ValueError, "'num_returns' must be an integer"),
        ({"max_retries": 1.5}, ValueError, "'max_retries' must be an integer >= -1"),
        ({"resources": {"GPU": 1}}, ValueError, "use num_cpus / num_gpus / memory"),
        ({"scheduling_strategy": "PACKED"}, ValueError, "'scheduling_strategy' must be"),
        ({"runtime_env": {"conda": "x"}}, ValueError, "runtime_env key 'conda' is not supported"),
        ({"runtime_env": {"env_vars": {"TSRAY_X": "1"}}}, ValueError, "name 'TSRAY_X' is not allowed"),
    ],
)
def test_bad_task_options_name_the_option(options: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        module_level.options(**options)


def test_actor_only_options_are_refused_on_functions_and_checked_on_classes() -> None:
    with pytest.raises(ValueError, match="invalid option keyword 'max_restarts'"):
        module_level.options(max_restarts=1)
    with pytest.raises(ValueError, match="'lifetime' must be 'detached'"):
        tsray.remote(lifetime="forever")(Plain)
    assert repr(tsray.remote(max_restarts=2)(Plain)) == "ActorClass(py:test_remote_options:Plain#0)"


def test_a_nested_function_cannot_be_remote() -> None:
    def inner() -> None:
        pass

    with pytest.raises(ValueError, match="top level of a module"):
        target_of(inner, "test")


def test_init_refuses_resources_when_joining_a_cluster() -> None:
    with pytest.raises(ValueError, match="num_cpus, num_gpus and resources must not be provided"):
        tsray.init(address="auto", num_cpus=4)
    with pytest.raises(TypeError, match="unknown argument 'adress'"):
        tsray.init(adress="auto")


def test_runtime_env_becomes_the_nodes_canonical_json() -> None:
    got = json.loads(runtime_env_json({"pip": ["emoji"], "env_vars": {"A": "1"}}, "t", {"CODE": "/x", "A": "0"}))
    assert got == {"pip": {"packages": ["emoji"], "pipCheck": False}, "envVars": {"A": "1", "CODE": "/x"}}
    assert runtime_env_json(None, "t") == ""


@pytest.fixture()
def script_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("seed_script", None)


def test_a_driver_scripts_definitions_load_without_its_main_code(script_dir: Path) -> None:
    (script_dir / "seed_script.py").write_text(
        "import tsray as ray\n"
        "LIMIT: int = 3\n"
        "ray.init()\n"
        "raise SystemExit('main code ran')\n"
        "@ray.remote\n"
        "def below(x):\n    return x < LIMIT\n"
        "if __name__ == '__main__':\n    raise SystemExit('guarded code ran')\n",
        encoding="utf-8",
    )
    mod = load_definitions("seed_script")
    assert mod.LIMIT == 3
    assert mod.below._function(2) is True
    assert load_definitions("seed_script") is mod


def test_a_missing_driver_script_names_the_code_root() -> None:
    with pytest.raises(ModuleNotFoundError, match="PY_TSRAY_JOB_CODE_ROOT"):
        load_definitions("no_such_driver_script_here")
