"""Fail when a DAG or plugin file imports something heavy at module level.

Airflow parses every file in dags/ and plugins/ again and again; a module-level import of
torch, Great Expectations, cleanlab, pandas or the screening engine makes every parse pay
for it. Imports inside functions (run at task time) are fine. Reads the files as text
(ast), so it needs neither Airflow nor the heavy packages.

    python scripts/check_dag_imports.py [FILES...]   (default: dags/*.py plugins/*.py)
"""

from __future__ import annotations

import ast
import glob
import sys

HEAVY = ("torch", "great_expectations", "cleanlab", "pandas", "sklearn", "scipy", "pyarrow", "screening",
         "checks", "weasyprint", "sentence_transformers", "transformers")
# the app package is allowed only through its light modules
LIGHT_APP = ("dataward.airflow", "dataward.config", "dataward.errors", "dataward.context")


def module_level_imports(tree: ast.Module):
    """(line, module name) of every import outside a function or class body."""
    for node in tree.body:
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(n, ast.Import):
                yield from ((n.lineno, a.name) for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                yield n.lineno, n.module
            stack.extend(ast.iter_child_nodes(n))


def problems(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    out = []
    for line, name in module_level_imports(tree):
        top = name.split(".")[0]
        if top in HEAVY:
            out.append(f"{path}:{line}: module-level import of {name} (heavy: import it inside the task)")
        elif top == "dataward" and not any(name == m or name.startswith(m + ".") for m in LIGHT_APP):
            out.append(f"{path}:{line}: module-level import of {name} (import the app inside the task, "
                       f"or from one of {', '.join(LIGHT_APP)})")
    return out


def main(argv: list[str]) -> int:
    files = argv or sorted(glob.glob("dags/*.py") + glob.glob("plugins/*.py"))
    found = [p for f in files for p in problems(f)]
    for p in found:
        print(p, file=sys.stderr)
    print(f"{len(files)} DAG and plugin files: {'no' if not found else len(found)} heavy module-level imports")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
