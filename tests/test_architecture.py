"""Data flows one way through the packages (ARCHITECTURE.md), read from the source with `ast`:

    core (contract_review/*) -> annotation -> training -> reviewer -> eval -> app
                      kernels -> training

A package imports only itself and the packages before it; `contract_review/cli.py` (the command entry
point, the one core module that imports the packages) and `bench/` sit above them all. Every import
counts, at module top or inside a function, so a lazy import cannot hide a tie that runs back up, and
no two files of different packages import each other in a circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from contract_review.paths import REPO_ROOT

# the order data flows in: a package may import itself and the packages of a lower rank
RANK = {"core": 0, "kernels": 1, "annotation": 1, "training": 2, "reviewer": 3, "eval": 4, "app": 5, "top": 9}
FOLDERS = {"contract_review": "core", "kernels": "kernels", "annotation": "annotation", "training": "training",
           "reviewer": "reviewer", "eval": "eval", "app": "app", "bench": "top"}
ENTRY_POINT = "contract_review.cli"


def module_name(rel: Path) -> str:
    """contract_review.<...> of a source file given relative to the repository root."""
    parts = rel.with_suffix("").parts
    return ".".join(parts if parts[0] == "contract_review" else ("contract_review", *parts))


def package_of(module: str) -> str | None:
    """The package a module of ours belongs to; None for another distribution's."""
    parts = module.split(".")
    if parts[0] != "contract_review":
        return None
    if module == ENTRY_POINT or module.startswith(ENTRY_POINT + ".") or (len(parts) > 1 and parts[1] == "bench"):
        return "top"
    return FOLDERS[parts[1]] if len(parts) > 1 and parts[1] in FOLDERS else "core"


def imports(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute name) of every import in a module's source, top level or not, relative ones resolved;
    `from a import b` gives a.b (b may be a module or a name in a)."""
    here = module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (here[: len(here) - node.level + 1] if node.level else []) + ([node.module] if node.module else [])
            out += [(node.lineno, ".".join(base + [alias.name])) for alias in node.names]
    return out


def against_the_flow(files: dict[Path, str]) -> list[str]:
    """Every import, in {relative path: source}, of a package at or after the importer's in the flow."""
    wrong = []
    for rel, source in files.items():
        own = package_of(module_name(rel))
        for line, name in imports(source, module_name(rel)):
            target = package_of(name)
            if target is not None and own != "top" and target != own and RANK[target] >= RANK[own]:
                wrong.append(f"{rel}:{line}: {own} imports {name} ({target})")
    return wrong


def circles_across_packages(files: dict[Path, str]) -> list[str]:
    """Import circles among the files whose modules belong to more than one package."""
    modules = {module_name(rel): rel for rel in files}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, rel in modules.items():
        for _, imported in imports(files[rel], name):
            while imported and imported not in modules:  # a.b.name -> a.b
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                graph[name].add(imported)
    found = set()
    for start in modules:
        stack, seen = [[start]], {start}
        while stack:
            trail = stack.pop()
            for nxt in graph[trail[-1]]:
                if nxt == start and len({package_of(m) for m in trail}) > 1:
                    found.add(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append(trail + [nxt])
    return sorted(found)


def _source_files() -> dict[Path, str]:
    return {p.relative_to(REPO_ROOT): p.read_text(encoding="utf-8")
            for folder in FOLDERS for p in sorted((REPO_ROOT / folder).rglob("*.py")) if "__pycache__" not in p.parts}


def test_no_import_runs_back_up_the_flow():
    wrong = against_the_flow(_source_files())
    assert not wrong, "imports against the flow (ARCHITECTURE.md):\n" + "\n".join(wrong)


def test_no_circle_across_files_of_different_packages():
    circles = circles_across_packages(_source_files())
    assert not circles, "import circles across packages:\n" + "\n".join(circles)


def test_the_checks_name_a_lazy_import_back_up_and_a_circle():
    files = {
        Path("training/probe.py"): "import torch\n\ndef f():\n    from contract_review.reviewer.heads import x\n",
        Path("reviewer/heads.py"): "from contract_review.training import probe\nfrom . import decisions\n",
        Path("reviewer/decisions.py"): "from .heads import y\n",  # a circle inside one package is allowed
        Path("contract_review/cli.py"): "from contract_review.app import cli\n",  # the entry point: above all
        Path("contract_review/records.py"): "from contract_review.annotation import segment\n",
        Path("app/cli.py"): "from contract_review.cli import UserError\n",  # the entry point imports the packages
    }
    assert against_the_flow(files) == [
        "training/probe.py:4: training imports contract_review.reviewer.heads.x (reviewer)",
        "contract_review/records.py:1: core imports contract_review.annotation.segment (annotation)",
        "app/cli.py:1: app imports contract_review.cli.UserError (top)"]
    assert circles_across_packages(files) == [
        "contract_review.app.cli -> contract_review.cli -> contract_review.app.cli",
        "contract_review.cli -> contract_review.app.cli -> contract_review.cli",
        "contract_review.reviewer.heads -> contract_review.training.probe -> contract_review.reviewer.heads",
        "contract_review.training.probe -> contract_review.reviewer.heads -> contract_review.training.probe"]
