"""The house: every import points down the layers, and no import circle exists anywhere.

The contracts live in pyproject (`[tool.importlinter]`) so `lint-imports` checks them from a
shell too. Every import counts: those under TYPE_CHECKING and inside functions tie modules
together for a reader just as much as those at the top.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("app", exclude_type_checking_imports=False, cache_dir=None)


def _layers() -> list[grimp.Layer]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [grimp.Layer(*(m.strip() for m in layer.split("|"))) for layer in layers]


def circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other, directly or round about (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_imports_one_that_imports_it_back() -> None:
    """Also between a package and its own modules, which import-linter's sibling check skips."""
    assert circles(_graph()) == []


def test_no_layer_imports_one_above_it() -> None:
    assert _graph().find_illegal_dependencies_for_layers(layers=_layers()) == set()


@pytest.mark.parametrize(
    ("importer", "imported", "upward"),
    [
        ("app.platform.db", "app.shell.main", True),  # the platform reaching up to the shell
        ("app.billing.models", "app.billing.service", False),  # a circle inside a domain
        ("app.shell.cli.bills", "app.shell.cli", False),  # a module and its own package
    ],
)
def test_the_checks_see_an_upward_import_and_a_circle(
    importer: str, imported: str, upward: bool
) -> None:
    graph = _graph()
    graph.add_import(importer=importer, imported=imported)
    assert bool(graph.find_illegal_dependencies_for_layers(layers=_layers())) == upward
    assert any(importer in c and imported in c for c in circles(graph))
