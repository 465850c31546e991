"""Task specs of Python tasks and actors submitted by a Python driver (``@tsray.remote``).

The node runs a ``py:`` function in a Python worker. Every spec carries the job's runtime env (the
``runtime_env`` of ``tsray.init`` merged with the task's own) plus ``PY_TSRAY_JOB_CODE_ROOT``, the
driver's code root: the worker puts it first on ``sys.path`` so the driver's modules import there.
Another machine's node would need the folder itself (shipping it is the job working-dir mechanism,
issue #16): this one variable is the hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._options import resource_amounts, runtime_env_json, scheduling_pb
from .protocol import pb
from .refs import ActorHandle

if TYPE_CHECKING:
    from ._driver import Client

__all__ = ["CODE_ROOT_VAR", "submit_python_task", "create_python_actor", "job_env_json"]

#: Environment variable of a job's Python workers naming the driver's code root.
CODE_ROOT_VAR = "PY_TSRAY_JOB_CODE_ROOT"


def job_env_json(client: Client, task_env: Any, where: str) -> str:
    """The runtime env JSON of one Python task or actor: the job's, the task's on top, and the code root."""
    env = dict(client.job_runtime_env or {})
    if task_env:
        job_vars = dict(env.get("env_vars") or {})
        env.update(task_env)
        if job_vars:
            env["env_vars"] = {**job_vars, **(task_env.get("env_vars") or {})}
    extra = {CODE_ROOT_VAR: client.code_root} if client.code_root else None
    return runtime_env_json(env, where, extra)


def _strategy(options: dict[str, Any], where: str) -> pb.SchedulingStrategy | None:
    # Tasks a Python task submits do not inherit its placement group yet (docs/python.md).
    return scheduling_pb(options.get("scheduling_strategy"), where)


def submit_python_task(
    client: Client, target: tuple[str, str], name: str, args: tuple[Any, ...], options: dict[str, Any], streaming: bool
) -> Any:
    """Submit a Python function call; refs as Ray returns them (one, a list, or a generator)."""
    from ._remote import ObjectRefGenerator

    nr = options.get("num_returns", 1)
    streaming = streaming or nr in ("streaming", "dynamic")
    n = 1 if streaming else int(nr)
    task_id = client.new_id("t")
    task_name = options.get("name") or name
    where = f"{task_name}.remote()"
    targs, payloads, temp = client._task_args(task_id, args, where)
    retry = options.get("retry_exceptions", False)
    spec = pb.TaskSpec(
        task_id=task_id,
        function=pb.FunctionDescriptor(module_url=target[0], key=target[1], name=name),
        args=targs,
        resources=resource_amounts(options, 1),
        num_returns=n,
        streaming=streaming,
        return_ids=[f"{task_id}.{i}" for i in range(n)],
        max_retries=int(options.get("max_retries", 3)),
        retry_exceptions=retry is True or bool(retry),
        retry_exception_names=[e.__name__ for e in retry] if isinstance(retry, (list, tuple)) else [],
        name=task_name,
        job_id=client.job_id,
        xlang=True,
        runtime_env_json=job_env_json(client, options.get("runtime_env"), where),
    )
    strategy = _strategy(options, where)
    if strategy is not None:
        spec.scheduling.CopyFrom(strategy)
    refs = client._submit(spec, payloads, temp)
    if streaming:
        return ObjectRefGenerator(task_id, refs[0])
    return refs[0] if n == 1 else refs


def create_python_actor(
    client: Client,
    target: tuple[str, str],
    class_name: str,
    methods: list[str],
    is_async: bool,
    args: tuple[Any, ...],
    options: dict[str, Any],
) -> ActorHandle:
    """Start a Python actor (or, with ``get_if_exists``, return the named one that already runs)."""
    name = options.get("name", "")
    namespace = options.get("namespace", "")
    if name and options.get("get_if_exists"):
        from .errors import ActorNotFoundError

        try:
            return client.get_actor(name, namespace or None)
        except ActorNotFoundError:
            pass
    actor_id = client.new_id("a")
    task_id = client.new_id("t")
    where = f"{class_name}.remote()"
    targs, payloads, temp = client._task_args(task_id, args, f"{where} constructor")
    groups = options.get("concurrency_groups") or {}
    creation = pb.ActorCreationSpec(
        actor_id=actor_id,
        class_name=class_name,
        methods=methods,
        name=name,
        namespace=namespace,
        detached=options.get("lifetime") == "detached",
        max_restarts=int(options.get("max_restarts", 0)),
        max_task_retries=int(options.get("max_task_retries", 0)),
        max_concurrency=int(options.get("max_concurrency", 1000 if is_async else 1)),
        concurrency_groups=[pb.ConcurrencyGroup(name=g, max_concurrency=n) for g, n in groups.items()],
        # Ray: an actor needs 1 CPU to be scheduled and holds 0 while it lives, unless num_cpus is given.
        hold_resources=resource_amounts(options, 0),
        is_async=is_async,
    )
    spec = pb.TaskSpec(
        task_id=task_id,
        function=pb.FunctionDescriptor(module_url=target[0], key=target[1], name=class_name),
        args=targs,
        resources=resource_amounts(options, 1),
        num_returns=1,
        return_ids=[f"{task_id}.0"],
        max_retries=0,
        name=f"{class_name}.__init__",
        job_id=client.job_id,
        actor_creation=creation,
        xlang=True,
        runtime_env_json=job_env_json(client, options.get("runtime_env"), where),
    )
    strategy = _strategy(options, where)
    if strategy is not None:
        spec.scheduling.CopyFrom(strategy)
    client._submit(spec, payloads, temp)
    return client._make_handle(actor_id, class_name, methods)
