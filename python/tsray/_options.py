"""Ray's task and actor options, checked at the edge and turned into wire fields.

``@tsray.remote(num_gpus=1)``, ``f.options(...)``, ``Cls.options(...)``: unknown names and wrong
types raise :class:`ValueError` / :class:`TypeError` naming the option (as Ray's ``ValueError:
Invalid option keyword``), before anything is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .protocol import pb

__all__ = ["TASK_OPTIONS", "ACTOR_OPTIONS", "check_options", "resource_amounts", "scheduling_pb", "runtime_env_json"]

#: Resources are fixed point on the wire: 1e-4 units (as @tsray/scheduler's RESOURCE_UNIT).
RESOURCE_UNIT = 10_000

_COMMON = {"num_cpus", "num_gpus", "memory", "resources", "name", "scheduling_strategy", "runtime_env"}
#: Options of ``@tsray.remote`` functions (Ray's names).
TASK_OPTIONS = frozenset(_COMMON | {"num_returns", "max_retries", "retry_exceptions"})
#: Options of ``@tsray.remote`` classes (Ray's names).
ACTOR_OPTIONS = frozenset(
    _COMMON
    | {"namespace", "lifetime", "get_if_exists", "max_restarts", "max_task_retries", "max_concurrency", "concurrency_groups"}
)


def _number(where: str, key: str, v: Any, *, minimum: float = 0) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
        raise ValueError(f"{where}: option {key!r} must be a number >= {minimum:g}, got {v!r}")


def _integer(where: str, key: str, v: Any, *, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{where}: option {key!r} must be an integer >= {minimum}, got {v!r}")


def check_options(options: Mapping[str, Any], known: frozenset[str], where: str) -> dict[str, Any]:
    """Validate ``options`` against ``known``; returns them as a dict (``None`` values dropped)."""
    out: dict[str, Any] = {}
    for key, v in options.items():
        if key not in known:
            raise ValueError(f"{where}: invalid option keyword {key!r} (valid: {', '.join(sorted(known))})")
        if v is None:
            continue
        if key in ("num_cpus", "num_gpus", "memory"):
            _number(where, key, v)
        elif key == "resources":
            if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
                raise TypeError(f"{where}: option 'resources' must be a dict of name -> amount, got {v!r}")
            if any(k in ("CPU", "GPU", "memory") for k in v):
                raise ValueError(f"{where}: use num_cpus / num_gpus / memory, not resources={{'CPU'|'GPU'|'memory': ...}}")
            for k, x in v.items():
                _number(where, f"resources[{k!r}]", x)
        elif key == "num_returns":
            if v not in ("streaming", "dynamic"):
                _integer(where, key, v, minimum=0)
        elif key in ("max_retries", "max_restarts", "max_task_retries"):
            _integer(where, key, v, minimum=-1)
        elif key == "max_concurrency":
            _integer(where, key, v, minimum=1)
        elif key == "retry_exceptions":
            if not isinstance(v, bool) and not (isinstance(v, (list, tuple)) and all(isinstance(e, type) for e in v)):
                raise TypeError(f"{where}: option 'retry_exceptions' must be a bool or a list of exception classes")
        elif key in ("name", "namespace"):
            if not isinstance(v, str) or not v:
                raise ValueError(f"{where}: option {key!r} must be a non-empty string, got {v!r}")
        elif key == "lifetime":
            if v not in ("detached", "non_detached"):
                raise ValueError(f"{where}: option 'lifetime' must be 'detached' or 'non_detached', got {v!r}")
        elif key == "concurrency_groups":
            if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(n, int) and n >= 1 for k, n in v.items()):
                raise TypeError(f"{where}: option 'concurrency_groups' must be a dict of group name -> max concurrency >= 1")
        elif key == "runtime_env":
            runtime_env_json(v, where)  # checks it
        elif key == "scheduling_strategy":
            scheduling_pb(v, where)  # checks it
        out[key] = v
    return out


def resource_amounts(options: Mapping[str, Any], default_cpus: float) -> list[pb.ResourceAmount]:
    """The wire resources of ``options`` (``num_cpus`` defaulting to ``default_cpus``)."""
    res: dict[str, float] = {"CPU": float(options.get("num_cpus", default_cpus))}
    if options.get("num_gpus"):
        res["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        res["memory"] = float(options["memory"])
    res.update({k: float(v) for k, v in (options.get("resources") or {}).items()})
    return [pb.ResourceAmount(name=k, units=round(v * RESOURCE_UNIT)) for k, v in sorted(res.items()) if v]


def scheduling_pb(strategy: Any, where: str) -> pb.SchedulingStrategy | None:
    """A Ray scheduling strategy (``"DEFAULT"``, ``"SPREAD"``, :class:`PlacementGroupSchedulingStrategy`,
    :class:`NodeAffinitySchedulingStrategy`) as the wire's ``SchedulingStrategy`` (None = DEFAULT)."""
    from .util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return pb.SchedulingStrategy(kind="SPREAD")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return pb.SchedulingStrategy(
            kind="PLACEMENT_GROUP",
            placement_group_id=strategy.placement_group.id,
            bundle_index=strategy.placement_group_bundle_index,
            capture_child_tasks=bool(strategy.placement_group_capture_child_tasks),
        )
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return pb.SchedulingStrategy(kind="NODE_AFFINITY", node_id=strategy.node_id, soft=strategy.soft)
    raise ValueError(
        f"{where}: option 'scheduling_strategy' must be 'DEFAULT', 'SPREAD', a PlacementGroupSchedulingStrategy or a "
        f"NodeAffinitySchedulingStrategy, got {strategy!r}"
    )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Ray's runtime_env keys -> @tsray/runtime-env's NormalizedRuntimeEnv keys (docs/python.md).
_RUNTIME_ENV_KEYS = {"pip": "pip", "env_vars": "envVars", "working_dir": "workingDir", "py_modules": "pyModules", "excludes": "excludes"}


def runtime_env_json(env: Any, where: str, extra_env_vars: Mapping[str, str] | None = None) -> str:
    """Canonical JSON of a Ray ``runtime_env`` dict as the node reads it (``TaskSpec.runtime_env_json``).

    ``extra_env_vars`` are added under ``envVars`` (the user's own win). '' for an empty environment.
    """
    if env is None:
        env = {}
    if not isinstance(env, Mapping):
        raise TypeError(f"{where}: runtime_env must be a dict, got {type(env).__name__}")
    out: dict[str, Any] = {}
    for k, v in env.items():
        if k not in _RUNTIME_ENV_KEYS:
            raise ValueError(f"{where}: runtime_env key {k!r} is not supported (supported: {', '.join(_RUNTIME_ENV_KEYS)})")
        if k == "pip":
            pkgs = v.get("packages", []) if isinstance(v, Mapping) else v
            if not isinstance(pkgs, (list, tuple)) or not all(isinstance(p, str) for p in pkgs):
                raise TypeError(f"{where}: runtime_env['pip'] must be a list of requirement strings")
            check = bool(v.get("pip_check", False)) if isinstance(v, Mapping) else False
            out["pip"] = {"packages": list(pkgs), "pipCheck": check}
        elif k == "env_vars":
            if not isinstance(v, Mapping) or not all(isinstance(a, str) and isinstance(b, str) for a, b in v.items()):
                raise TypeError(f"{where}: runtime_env['env_vars'] must be a dict of str -> str")
            for name in v:
                # As @tsray/runtime-env checks: TSRAY_* are tsray's own (the node would refuse the env).
                if not _ENV_NAME.match(name) or name.startswith("TSRAY_"):
                    raise ValueError(f"{where}: runtime_env['env_vars'] name {name!r} is not allowed (a shell name, not TSRAY_*)")
            out["envVars"] = dict(v)
        elif k == "working_dir":
            if not isinstance(v, str):
                raise TypeError(f"{where}: runtime_env['working_dir'] must be a local directory path")
            import os

            out["workingDir"] = os.path.abspath(v)
        else:
            if not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
                raise TypeError(f"{where}: runtime_env[{k!r}] must be a list of strings")
            out[_RUNTIME_ENV_KEYS[k]] = list(v)
    if extra_env_vars:
        out["envVars"] = {**extra_env_vars, **out.get("envVars", {})}
    return json.dumps(out, sort_keys=True, separators=(",", ":")) if out else ""
