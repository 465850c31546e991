"""What a Python module offers TypeScript, as JSON: its actor classes, functions, dataclasses and
TypedDicts with their signatures and type hints (``inspect``, ``typing.get_type_hints``).

``tsray gen-types mypkg.model`` imports this module in-process through pythonia (development time
only) and turns the description into a ``.d.ts`` (packages/cluster/src/cli/py-types.ts). A type is
a small tree, ``{"k": kind, ...}``:

- ``prim`` with ``t`` one of number, string, boolean, null, bytes;
- ``list`` / ``dict`` (str keys) with ``of``; ``tuple`` with ``items``; ``union`` with ``of``;
- ``literal`` with ``values``; ``ndarray`` with ``dtype`` (or null when not given);
- ``ref`` with ``name``: a dataclass or TypedDict, described under ``interfaces``;
- ``objectref``, ``handle`` (tsray.ObjectRef / ActorHandle), and ``any`` where nothing is known.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import os
import sys
import types
import typing
from collections import abc
from typing import Any

__all__ = ["describe", "describe_json"]

Tree = dict[str, Any]

_PRIMS: dict[Any, str] = {bool: "boolean", int: "number", float: "number", str: "string", bytes: "bytes", bytearray: "bytes"}
_LISTS = {list, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection, abc.Set}
_DICTS = {dict, abc.Mapping, abc.MutableMapping}


class _Describer:
    def __init__(self) -> None:
        self.interfaces: dict[str, Tree] = {}

    def type_of(self, tp: Any) -> Tree:
        if tp is inspect.Parameter.empty or tp is Any or tp is typing.Any:
            return {"k": "any"}
        if tp is None or tp is type(None):
            return {"k": "prim", "t": "null"}
        if tp in _PRIMS:
            return {"k": "prim", "t": _PRIMS[tp]}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.type_of(args[0])
        if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
            return {"k": "union", "of": [self.type_of(a) for a in args]}
        if origin is typing.Literal:
            return {"k": "literal", "values": [a for a in args if isinstance(a, (str, int, float, bool)) or a is None]}
        if origin in _LISTS or tp in _LISTS:
            return {"k": "list", "of": self.type_of(args[0]) if args else {"k": "any"}}
        if origin is tuple or tp is tuple:
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                return {"k": "list", "of": self.type_of(args[0]) if args else {"k": "any"}}
            return {"k": "tuple", "items": [self.type_of(a) for a in args]}
        if origin in _DICTS or tp in _DICTS:
            return {"k": "dict", "of": self.type_of(args[1]) if len(args) == 2 else {"k": "any"}}
        nd = _ndarray(tp, origin, args)
        if nd is not None:
            return nd
        if isinstance(tp, type):
            return self._class_type(tp)
        return {"k": "any"}

    def _class_type(self, tp: type) -> Tree:
        from .refs import ActorHandle, ObjectRef

        if issubclass(tp, ObjectRef):
            return {"k": "objectref"}
        if issubclass(tp, ActorHandle):
            return {"k": "handle"}
        if issubclass(tp, enum.Enum):
            return {"k": "literal", "values": [m.value for m in tp if isinstance(m.value, (str, int, float, bool))]}
        if dataclasses.is_dataclass(tp) or typing.is_typeddict(tp):
            self.interface(tp)
            return {"k": "ref", "name": tp.__name__}
        return {"k": "any"}

    def interface(self, tp: type) -> None:
        """Describe a dataclass or TypedDict (once) under ``interfaces``."""
        if tp.__name__ in self.interfaces:
            return
        entry: Tree = {"name": tp.__name__, "doc": _own_doc(tp), "fields": []}
        self.interfaces[tp.__name__] = entry  # before the fields: a type may refer to itself
        hints = _hints(tp)
        if dataclasses.is_dataclass(tp):
            for f in dataclasses.fields(tp):
                entry["fields"].append({"name": f.name, "type": self.type_of(hints.get(f.name, f.type)), "optional": False})
        else:
            required = getattr(tp, "__required_keys__", frozenset(hints))
            for name, hint in hints.items():
                entry["fields"].append({"name": name, "type": self.type_of(hint), "optional": name not in required})

    def signature(self, fn: Any, name: str, skip_self: bool) -> Tree:
        """A function or method: parameters (optional, rest), return type, async / generator."""
        sig = inspect.signature(fn)
        hints = _hints(fn)
        params = []
        for i, p in enumerate(sig.parameters.values()):
            if skip_self and i == 0:
                continue
            if p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD):
                continue  # calls across languages are positional
            params.append(
                {
                    "name": p.name,
                    "type": self.type_of(hints.get(p.name, p.annotation)),
                    "optional": p.default is not p.empty,
                    "rest": p.kind is p.VAR_POSITIONAL,
                }
            )
        ret = hints.get("return", sig.return_annotation)
        is_gen = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        if is_gen:
            gargs = typing.get_args(ret)
            ret = gargs[0] if gargs else Any
        return {
            "name": name,
            "doc": inspect.getdoc(fn) or "",
            "params": params,
            "returns": self.type_of(ret),
            "async": inspect.iscoroutinefunction(fn),
            "generator": is_gen,
        }


def _own_doc(cls: type) -> str:
    """The class's own docstring (not one inherited from dict, as a TypedDict's would be)."""
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable forward refs: what inspect saw, unresolved names as Any
        return dict(getattr(obj, "__annotations__", {}) or {})


def _ndarray(tp: Any, origin: Any, args: tuple[Any, ...]) -> Tree | None:
    np = sys.modules.get("numpy")
    if np is None or (tp is not np.ndarray and origin is not np.ndarray):
        return None
    dtype = None
    if len(args) == 2:
        inner = typing.get_args(args[1])
        if inner and isinstance(inner[0], type):
            try:
                dtype = np.dtype(inner[0]).name
            except TypeError:
                dtype = None
    return {"k": "ndarray", "dtype": dtype}


def _unwrap(obj: Any) -> Any:
    from ._remote import unwrap

    return unwrap(obj)


def describe(module_name: str) -> dict[str, Any]:
    """The description of ``module_name`` (imported with the current directory on ``sys.path``, as
    ``python -m`` would): classes (actors), functions, and the interfaces they use."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    mod = importlib.import_module(module_name)
    d = _Describer()
    classes, functions = [], []
    for name, raw in sorted(vars(mod).items()):
        obj = _unwrap(raw)
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isclass(obj):
            if dataclasses.is_dataclass(obj) or typing.is_typeddict(obj):
                d.interface(obj)
                continue
            if issubclass(obj, (enum.Enum, BaseException)):
                continue
            methods = [
                d.signature(m, n, skip_self=True)
                for n, m in inspect.getmembers(obj, inspect.isfunction)
                if not n.startswith("_") and not isinstance(inspect.getattr_static(obj, n), staticmethod)
            ]
            classes.append({"name": name, "doc": _own_doc(obj), "methods": methods})
        elif inspect.isfunction(obj):
            functions.append(d.signature(obj, name, skip_self=False))
    return {"module": module_name, "classes": classes, "functions": functions, "interfaces": list(d.interfaces.values())}


def describe_json(module_name: str) -> str:
    """:func:`describe` as a JSON string (what crosses the pythonia bridge); a module that fails to
    import gives ``{"error": "<exception>: <message>"}`` (the bridge would lose the message)."""
    try:
        return json.dumps(describe(module_name), sort_keys=True)
    except Exception as e:
        return json.dumps({"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":  # python -m tsray.describe mypkg.model (the same JSON, without pythonia)
    print(describe_json(sys.argv[1]))
