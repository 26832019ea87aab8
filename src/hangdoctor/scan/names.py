"""Names in Python source: dotted callees, imports (relative ones too), one scope's nodes.

Shared by the static scan and, as a generalisation of the helpers in
`hangdoctor.analysis.source`, usable by the live source reader: it has the same
needs (resolve `t.sleep` through `import time as t`) for one line at a time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

__all__ = [
    "SCOPE_NODES",
    "child_fields",
    "children",
    "dotted_parts",
    "import_bindings",
    "iter_scope",
    "package_of",
    "resolve_relative",
    "safe_unparse",
    "walk",
]

# nodes whose body is a scope of its own: code in them does not run where they are written
SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

# fields that never hold a node worth visiting: a name's Load/Store context and an
# operator are shared singletons (a third of the nodes `ast.walk` yields), the rest strings
_LEAF_FIELDS = frozenset({"ctx", "op", "ops", "type_comment", "kind"})
_node_fields: dict[type[ast.AST], tuple[str, ...]] = {}


def child_fields(cls: type[ast.AST]) -> tuple[str, ...]:
    """The fields of a node type that may hold child nodes (what `children` reads)."""
    fields = _node_fields.get(cls)
    if fields is None:
        # a name's `id` and a constant's `value` are never nodes: the commonest leaves
        # cost no lookups at all
        leaf = cls in (ast.Name, ast.Constant)
        fields = () if leaf else tuple(f for f in cls._fields if f not in _LEAF_FIELDS)
        _node_fields[cls] = fields
    return fields


def children(node: ast.AST) -> list[ast.AST]:
    """The child nodes of `node` in field order, like `ast.iter_child_nodes`, without the
    context and operator nodes; a list, several times faster to get than the generator.

    Every scan pass walks every node of every file: this is the scan's inner loop.
    """
    out: list[ast.AST] = []
    for name in child_fields(type(node)):
        value = getattr(node, name, None)
        if isinstance(value, list):
            out.extend([v for v in value if isinstance(v, ast.AST)])
        elif isinstance(value, ast.AST):
            out.append(value)
    return out


def walk(node: ast.AST) -> list[ast.AST]:
    """`node` and every node below it, in the order of `ast.walk` (breadth first), without
    the context and operator nodes (see `children`)."""
    out = [node]
    i = 0
    while i < len(out):
        out.extend(children(out[i]))
        i += 1
    return out


def dotted_parts(expr: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None when the chain does not start at a plain name."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return parts[::-1]
    return None


def package_of(module: str, is_package: bool) -> str:
    """The package a relative import in `module` starts from."""
    if is_package:
        return module
    return module.rpartition(".")[0]


def resolve_relative(package: str, level: int, name: str | None) -> str | None:
    """`from ..x import y` in package `a.b` -> `a.x`; None when it climbs above the top."""
    if level == 0:
        return name
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not name):
        return None
    base = parts[: len(parts) - (level - 1)]
    if name:
        base.append(name)
    return ".".join(base) or None


def import_bindings(
    node: ast.Import | ast.ImportFrom, module: str = "", is_package: bool = False
) -> list[tuple[str, str]]:
    """(local name, dotted origin) for each name an import statement binds.

    `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`; relative
    imports are resolved against `module` (unresolvable ones bind nothing);
    `*` imports bind nothing (the names are not known here).
    """
    out: list[tuple[str, str]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                out.append((alias.asname, alias.name))
            else:
                top = alias.name.split(".", 1)[0]
                out.append((top, top))
        return out
    base = resolve_relative(package_of(module, is_package), node.level, node.module)
    if base is None:
        return out
    for alias in node.names:
        if alias.name == "*":
            continue
        out.append((alias.asname or alias.name, f"{base}.{alias.name}"))
    return out


def iter_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` that runs in its scope, in source order.

    Nested functions, lambdas and classes are yielded themselves (they are
    bound here) but not entered: their bodies run elsewhere, or later.
    """
    stack = children(node)
    stack.reverse()
    while stack:
        cur = stack.pop()
        yield cur
        if isinstance(cur, SCOPE_NODES):
            continue
        below = children(cur)
        below.reverse()
        stack.extend(below)


def safe_unparse(expr: ast.AST, limit: int = 120) -> str:
    """Source text of `expr` (shortened to `limit` characters), never raising."""
    try:
        text = ast.unparse(expr)
    except (ValueError, RecursionError, AttributeError):
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
