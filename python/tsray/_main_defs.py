"""The definitions of a driver's main script, loaded in a worker without running its main code.

A Ray script is usually not guarded (``ray.init()``, ``f.remote()``, prints at the top level). A
worker that needs a function or class of it (key suffix ``#main``, see :mod:`tsray._remote`) runs
only the script's top-level imports, ``def``s, ``class``es and assignments of literal constants, in
a module of the script's name. Anything else at the top level (calls, loops, ``if __name__ ==
"__main__":``) is skipped, so names it defines are not there (docs/python.md).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types

__all__ = ["load_definitions"]


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not all(isinstance(t, ast.Name) for t in targets):
            return False
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
        return True
    return False


def load_definitions(module_name: str) -> types.ModuleType:
    """The module ``module_name`` (found on ``sys.path``) with only its definitions run; cached in
    ``sys.modules`` under its name (dataclasses and pickling look classes up there)."""
    mod = sys.modules.get(module_name)
    if mod is not None and getattr(mod, "__tsray_definitions_only__", False):
        return mod
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ModuleNotFoundError(
            f"the driver's script {module_name}.py is not on this worker's sys.path (the job's code root, "
            f"PY_TSRAY_JOB_CODE_ROOT, names its folder; sys.path[0] is {sys.path[0] if sys.path else '?'})"
        )
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    tree.body = [n for n in tree.body if _is_definition(n)]
    mod = types.ModuleType(module_name)
    mod.__file__ = spec.origin
    mod.__tsray_definitions_only__ = True  # type: ignore[attr-defined]
    sys.modules[module_name] = mod
    try:
        exec(compile(tree, spec.origin, "exec"), mod.__dict__)  # noqa: S102 - the job's own code, as an import would run it
    except BaseException:
        del sys.modules[module_name]
        raise
    return mod
