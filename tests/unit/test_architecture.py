"""Dependencies point inward: domain <- application <- adapters <- entrypoints; the client stands apart.

The rules are import-linter contracts in pyproject.toml. This module runs `lint-imports` on them,
shows that each contract breaks on the import it forbids, and checks what a contract cannot say:
that the inner layers take nothing from outside the standard library but attrs (a contract only
forbids what it names), that imports are absolute, and that the domain has no async code.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.api import read_configuration
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.independence import IndependenceContract
from importlinter.contracts.layers import LayersContract

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = ROOT / "src" / "chat4all"
LAYERS = ["domain", "application", "adapters", "entrypoints", "client"]
STDLIB = set(sys.stdlib_module_names)
THIRD_PARTY_ALLOWED = {"domain": {"attrs"}, "application": {"attrs"}}
CONTRACT_TYPES = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "independence": IndependenceContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("chat4all", include_external_packages=True, cache_dir=None)


def contract(contract_id: str) -> Any:
    configuration = read_configuration(str(PYPROJECT))
    options = next(options for options in configuration["contracts_options"] if options["id"] == contract_id)
    session = {**configuration["session_options"], "root_packages": ["chat4all"]}
    return CONTRACT_TYPES[options["type"]](options["name"], session, options)


def test_the_import_contracts_are_kept() -> None:
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(PYPROJECT), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("contract_id", "importer", "imported"),
    [
        ("layers", "chat4all.domain.messages", "chat4all.entrypoints.cli"),
        ("layers", "chat4all.application.messaging", "chat4all.adapters.sql.engine"),
        ("layers", "chat4all.client.api", "chat4all.adapters.bus"),
        ("layers", "chat4all.adapters.bus", "chat4all.client.api"),
        ("client-apart", "chat4all.client.upload", "chat4all.domain.uploads"),
        ("client-apart", "chat4all.client.api", "chat4all.entrypoints.http.schemas"),
        ("http-without-adapters", "chat4all.entrypoints.http.message_routes", "chat4all.adapters.sql.engine"),
        ("http-given-its-configuration", "chat4all.entrypoints.http.file_routes", "chat4all.entrypoints.settings"),
        ("domain-without-io", "chat4all.domain.messages", "asyncio"),
        ("inner-layers-without-frameworks", "chat4all.application.messaging", "sqlalchemy"),
        ("engines-apart", "chat4all.adapters.sql.sqlite.intake", "chat4all.adapters.sql.postgres.connections"),
        ("no-cycles", "chat4all.adapters.storage.s3_bucket", "chat4all.adapters.storage.s3_running"),
    ],
)
def test_each_contract_breaks_on_the_import_it_forbids(
    graph: grimp.ImportGraph, contract_id: str, importer: str, imported: str
) -> None:
    assert contract(contract_id).check(copy.deepcopy(graph), verbose=False).kept
    broken = copy.deepcopy(graph)
    broken.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    assert not contract(contract_id).check(broken, verbose=False).kept


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_from_outside_only_what_it_may(graph: grimp.ImportGraph, layer: str) -> None:
    package = f"chat4all.{layer}"
    outside_allowed = STDLIB | THIRD_PARTY_ALLOWED[layer] if layer in THIRD_PARTY_ALLOWED else None
    violations = []
    for module in sorted({package} | graph.find_descendants(package)):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            top = imported.split(".")[0]
            if imported == "chat4all":  # the root package belongs to no layer
                violations.append(f"{module} imports {imported}")
            elif outside_allowed is not None and top != "chat4all" and top not in outside_allowed:
                violations.append(f"{module} imports third-party {imported}")
    assert violations == []


def test_imports_are_absolute_so_layering_stays_visible() -> None:
    relative = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert relative == []


def test_domain_has_no_async_code() -> None:
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(node, ast.AsyncFunctionDef | ast.Await) for node in ast.walk(tree)), path
