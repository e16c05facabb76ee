"""Workflow modules keep the sandbox's per-run import small (see `workflows/__init__.py`).

The sandbox imports a run's own module afresh for each run, with every module it imports outside
`workflow.unsafe.imports_passed_through()`. A plain import of our own code there would be re-run for every run again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import workflows

MODULES = sorted(Path(workflows.__file__).parent.glob("*.py"))
# Our own top-level packages: anything else a workflow module imports plainly is the standard library or temporalio,
# which the sandbox passes through by default.
OURS = ("activities", "api", "core", "models", "workers", "workflows")


def _plain_imports_of_ours(tree: ast.Module) -> list[str]:
    """Module-level imports of our own packages that are not inside an `imports_passed_through()` block."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in OURS]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_own_code_is_imported_through_the_passthrough_block(path: Path) -> None:
    assert _plain_imports_of_ours(ast.parse(path.read_text())) == []


def test_the_check_sees_a_plain_import() -> None:
    source = "from temporalio import workflow\nfrom workflows.steps import db\nwith workflow.unsafe.imports_passed_through():\n    from models.visit import VisitInput\n"
    assert _plain_imports_of_ours(ast.parse(source)) == ["workflows.steps"]
