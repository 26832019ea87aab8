"""Which modules a Python source imports, read from its syntax tree (never run).

tests/test_layers.py keeps the layers of DESIGN.md apart with it; tests/test_packaging.py
keeps hangdoctor-runtime's files from needing the command line's.
"""

from __future__ import annotations

import ast

__all__ = ["imported_modules"]


def imported_modules(
    source: str, module: str, *, is_package: bool = False, required_only: bool = False
) -> set[str]:
    """Every module `source` imports, at any depth, relative imports resolved against `module`.

    `from a import b` counts as both `a` and `a.b`: b may be a submodule. With
    `required_only`, imports that may fail are left out: those guarded by
    `except ImportError`, and those only type checkers run (`if TYPE_CHECKING:`).
    """
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    if required_only:
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if required_only and _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import that may fail: in a `try` that catches ImportError, or for type checkers."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            caught = {
                n.id
                for h in parent.handlers
                for n in ast.walk(h.type or ast.Pass())
                if isinstance(n, ast.Name)
            }
            if caught & {"ImportError", "ModuleNotFoundError"}:
                return True
        if isinstance(parent, ast.If) and "TYPE_CHECKING" in ast.unparse(parent.test):
            return child in parent.body
        child, parent = parent, parents.get(parent)
    return False
