"""``@tsray.remote``: Python functions and classes as tasks and actors (Ray's Python API).

.. code-block:: python

    @tsray.remote(num_gpus=1)
    def f(x): ...
    ref = f.remote(1); f.options(num_returns=2).remote(1)

    @tsray.remote
    class Counter: ...
    c = Counter.options(name="c").remote(); c.increment.remote()

A function or class reaches the workers by module import (``py:<module>`` + its qualified name), not
by pickling. One defined in the driver's script (``__main__``) is named ``py:<script stem>`` with the
key suffix ``#main``: the worker imports the script's *definitions* only (imports, ``def``, ``class``,
constant assignments; docs/python.md), so an unguarded script's main code never runs on a worker. The
worker finds the script through the job's code root (:func:`code_root`), which the driver sends in the
job's runtime env (``PY_TSRAY_JOB_CODE_ROOT``).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from ._options import ACTOR_OPTIONS, TASK_OPTIONS, check_options
from .refs import ActorHandle, ObjectRef

__all__ = ["remote", "method", "RemoteFunction", "ActorClass", "ObjectRefGenerator", "target_of", "code_root", "MAIN_KEY_SUFFIX"]

#: Key suffix of a definition of the driver's main script (the worker loads its definitions only).
MAIN_KEY_SUFFIX = "#main"

F = TypeVar("F")


def code_root() -> str:
    """The driver's code root: the folder of the script it runs (``python driver.py``), else the cwd
    (``python -m pkg.mod``, an interactive session). Workers put it first on ``sys.path``."""
    main = sys.modules.get("__main__")
    f = getattr(main, "__file__", None)
    if f and getattr(main, "__spec__", None) is None:
        return str(Path(f).resolve().parent)
    return os.getcwd()


def target_of(obj: Any, what: str) -> tuple[str, str]:
    """``(module_url, key)`` naming a top-level function or class for the workers."""
    qual = getattr(obj, "__qualname__", "")
    mod = getattr(obj, "__module__", None)
    if not qual or not mod or "<locals>" in qual:
        raise ValueError(f"{what}: @tsray.remote needs a function or class defined at the top level of a module (got {qual or obj!r})")
    if mod == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if spec is not None and spec.name:
            return f"py:{spec.name}", qual + MAIN_KEY_SUFFIX
        f = getattr(main, "__file__", None)
        if not f:
            raise ValueError(f"{what}: remote functions of an interactive session cannot reach workers; define them in a .py file")
        return f"py:{Path(f).stem}", qual + MAIN_KEY_SUFFIX
    if getattr(sys.modules.get(mod), "__tsray_definitions_only__", False):
        # Decorated again in a worker that loaded the driver's script definitions-only: the same name.
        return f"py:{mod}", qual + MAIN_KEY_SUFFIX
    return f"py:{mod}", f"{qual}#0"


def _client(what: str) -> Any:
    from .client import _current

    return _current(what)


class ObjectRefGenerator:
    """The refs a generator task yields, in order, as they are produced (``num_returns="streaming"``)."""

    def __init__(self, task_id: str, completed: ObjectRef) -> None:
        self.task_id = task_id
        self.completed = completed
        self._index = 0

    def __iter__(self) -> Iterator[ObjectRef]:
        return self

    def __next__(self) -> ObjectRef:
        c = self.completed._owner
        item: ObjectRef = c.ref_of(f"{self.task_id}.g{self._index}")
        ready, _ = c.wait([item, self.completed], 1, None)
        if item in ready or self._index < int(c.get(self.completed)):
            self._index += 1
            return item
        raise StopIteration


class RemoteFunction(Generic[F]):
    """A Python function as a remote function: ``f.remote(*args)`` -> ObjectRef (a list of refs when
    ``num_returns`` > 1, an :class:`ObjectRefGenerator` when ``"streaming"``)."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self._function = function
        self._options = options
        self._target = target_of(function, f"@tsray.remote {getattr(function, '__name__', function)!r}")
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", "task")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = getattr(function, "__module__", "")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote function {self.__name__} cannot be called directly; use {self.__name__}.remote(...)")

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit a call (keyword arguments are not supported across languages: pass them positionally)."""
        if kwargs:
            raise TypeError(f"{self.__name__}.remote(): keyword arguments are not supported (pass them positionally)")
        streaming = inspect.isgeneratorfunction(self._function) or inspect.isasyncgenfunction(self._function)
        from ._submit import submit_python_task

        c = _client(f"{self.__name__}.remote()")
        return submit_python_task(c, self._target, self.__name__, args, self._options, streaming)

    def options(self, **options: Any) -> RemoteFunction[F]:
        """The same function with other options (Ray's names; unknown ones raise ValueError)."""
        merged = {**self._options, **check_options(options, TASK_OPTIONS, f"{self.__name__}.options()")}
        return RemoteFunction(self._function, merged)

    def __repr__(self) -> str:
        return f"RemoteFunction({self._target[0]}:{self._target[1]})"


#: Attribute ``@tsray.method`` sets on a method: its default call options.
METHOD_OPTIONS_ATTR = "__tsray_method_options__"


def method(*, num_returns: int | str | None = None, concurrency_group: str | None = None) -> Callable[[F], F]:
    """``@tsray.method(num_returns=2)`` on an actor method (Ray's ``ray.method``): default options of
    its calls through handles made by ``Cls.remote()``."""
    opts: dict[str, Any] = {}
    if num_returns is not None:
        if num_returns != "streaming" and (isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0):
            raise ValueError(f"@tsray.method: num_returns must be an int >= 0 or 'streaming', got {num_returns!r}")
        opts["num_returns"] = num_returns
    if concurrency_group is not None:
        opts["concurrency_group"] = concurrency_group

    def deco(fn: F) -> F:
        setattr(fn, METHOD_OPTIONS_ATTR, opts)
        return fn

    return deco


def _method_options(cls: type) -> dict[str, dict[str, Any]]:
    """Per-method default call options: ``@tsray.method``'s, and streaming for generator methods."""
    out: dict[str, dict[str, Any]] = {}
    for n, m in inspect.getmembers(cls, inspect.isfunction):
        opts = dict(getattr(m, METHOD_OPTIONS_ATTR, {}))
        if (inspect.isgeneratorfunction(m) or inspect.isasyncgenfunction(m)) and "num_returns" not in opts:
            opts["num_returns"] = "streaming"
        if opts:
            out[n] = opts
    return out


def _public_methods(cls: type) -> list[str]:
    return [n for n, m in inspect.getmembers(cls) if not n.startswith("_") and callable(m)]


def _is_async(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m) for _, m in inspect.getmembers(cls))


class ActorClass(Generic[F]):
    """A Python class as an actor class: ``Cls.remote(*args)`` starts an actor -> :class:`ActorHandle`."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = options
        self._target = target_of(cls, f"@tsray.remote class {cls.__name__}")
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"actor class {self.__name__} cannot be instantiated directly; use {self.__name__}.remote(...)")

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        """Start an actor (constructor arguments positionally)."""
        if kwargs:
            raise TypeError(f"{self.__name__}.remote(): keyword arguments are not supported (pass them positionally)")
        from ._submit import create_python_actor

        c = _client(f"{self.__name__}.remote()")
        handle = create_python_actor(c, self._target, self.__name__, _public_methods(self._cls), _is_async(self._cls), args, self._options)
        handle.method_options = _method_options(self._cls)
        return handle

    def options(self, **options: Any) -> ActorClass[F]:
        """The same class with other actor options (Ray's names; unknown ones raise ValueError)."""
        merged = {**self._options, **check_options(options, ACTOR_OPTIONS, f"{self.__name__}.options()")}
        return ActorClass(self._cls, merged)

    def __repr__(self) -> str:
        return f"ActorClass({self._target[0]}:{self._target[1]})"


def remote(*args: Any, **options: Any) -> Any:
    """``@tsray.remote`` / ``@tsray.remote(**options)`` on a top-level function or class (as Ray's)."""
    if len(args) == 1 and not options and (inspect.isfunction(args[0]) or inspect.isclass(args[0])):
        return _wrap(args[0], {})
    if args:
        raise TypeError("@tsray.remote takes a function or a class, or only keyword options: @tsray.remote(num_cpus=2)")

    def deco(obj: Any) -> Any:
        return _wrap(obj, options)

    return deco


def _wrap(obj: Any, options: dict[str, Any]) -> Any:
    if inspect.isclass(obj):
        return ActorClass(obj, check_options(options, ACTOR_OPTIONS, f"@tsray.remote class {obj.__name__}"))
    if inspect.isfunction(obj):
        return RemoteFunction(obj, check_options(options, TASK_OPTIONS, f"@tsray.remote {obj.__name__}"))
    raise TypeError(f"@tsray.remote takes a function or a class, got {type(obj).__name__}")


def unwrap(obj: Any) -> Any:
    """The function or class behind a ``@tsray.remote`` wrapper (the worker runs that)."""
    if isinstance(obj, RemoteFunction):
        return obj._function
    if isinstance(obj, ActorClass):
        return obj._cls
    return obj
