"""Python half of tools/check-size.mjs: line counts of files and functions under a directory.

Walks every ``*.py`` file with :mod:`ast` and prints one JSON object on stdout::

    {"files": [{"path", "lines"}], "functions": [{"path", "line", "name", "lines"}]}

A function's size is the line span of its ``def`` (decorators excluded) to its last line, for
``def``, ``async def`` and ``lambda``; methods are named ``Class.method``. Generated protobuf
modules (``*_pb2.py``) are left out.

Usage: python3 tools/check_size.py python/tsray
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def _functions(path: Path, tree: ast.AST) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
                end = child.end_lineno or child.lineno
                found.append(
                    {"path": str(path), "line": child.lineno, "name": ".".join([*scope, name]), "lines": end - child.lineno + 1}
                )
                visit(child, [*scope, name])
            elif isinstance(child, ast.ClassDef):
                visit(child, [*scope, child.name])
            else:
                visit(child, scope)

    visit(tree, [])
    return found


def main(root: str) -> None:
    files: list[dict[str, object]] = []
    functions: list[dict[str, object]] = []
    for path in sorted(Path(root).rglob("*.py")):
        if path.name.endswith("_pb2.py") or "__pycache__" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        files.append({"path": str(path), "lines": len(text.splitlines())})
        functions.extend(_functions(path, ast.parse(text, filename=str(path))))
    json.dump({"files": files, "functions": functions}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_size.py <directory>")
    main(sys.argv[1])
