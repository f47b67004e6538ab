"""Every public function and method of the package that takes arguments documents them in an `Args:` section,
and one that returns or yields a value documents it in `Returns:` / `Yields:` (the diffusers docstring style,
with shapes: see the house style in `patchvsr.api`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "patchvsr"


def public_functions() -> list[tuple[str, ast.FunctionDef]]:
    """(location, node) of the module-level functions and the methods of public classes, not starting with _."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                members = [node]
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                members = [item for item in node.body if isinstance(item, ast.FunctionDef)]
            else:
                continue
            found += [(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}", fn) for fn in members
                      if not fn.name.startswith("_") or fn.name == "__call__"]
    return found


def takes_arguments(fn: ast.FunctionDef) -> bool:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
    return bool(names or fn.args.vararg or fn.args.kwarg)


def gives_a_value(fn: ast.FunctionDef) -> bool:
    """A `return <value>` or a `yield` in the function's own body (nested functions do not count)."""
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, (ast.Yield, ast.YieldFrom)) or (isinstance(node, ast.Return) and node.value is not None
                                                             and not (isinstance(node.value, ast.Constant)
                                                                      and node.value.value is None)):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def test_the_package_has_public_functions_to_check():
    assert len(public_functions()) > 300


def test_public_functions_document_their_arguments():
    missing = [where for where, fn in public_functions()
               if takes_arguments(fn) and "Args:" not in (ast.get_docstring(fn) or "")]
    assert missing == []


def test_public_functions_document_what_they_return():
    properties = {"property", "cached_property"}
    missing = [where for where, fn in public_functions()
               if gives_a_value(fn) and not any(getattr(d, "id", getattr(d, "attr", None)) in properties
                                                for d in fn.decorator_list)
               and not any(word in (ast.get_docstring(fn) or "") for word in ("Returns:", "Yields:"))]
    assert missing == []
