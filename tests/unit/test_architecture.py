"""Dependencies point inward: domain <- application <- adapters <- entrypoints."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "chat4all"
LAYERS = ["domain", "application", "adapters", "entrypoints"]
STDLIB = set(sys.stdlib_module_names)
# The domain is pure: no I/O, no concurrency, no frameworks.
DOMAIN_FORBIDDEN_STDLIB = {"asyncio", "os", "io", "socket", "pathlib", "sqlite3", "subprocess", "threading", "logging"}
THIRD_PARTY_ALLOWED = {"domain": {"attrs"}, "application": {"attrs"}}


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: use absolute imports so layering stays visible")
    return found


def modules_in(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_inner_layers(layer: str) -> None:
    allowed_layers = set(LAYERS[: LAYERS.index(layer) + 1])
    violations = []
    for path in modules_in(layer):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "chat4all":
                target = name.split(".")[1] if "." in name else None
                if target not in allowed_layers:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
            elif layer in THIRD_PARTY_ALLOWED and top not in STDLIB and top not in THIRD_PARTY_ALLOWED[layer]:
                violations.append(f"{path.relative_to(PACKAGE)} imports third-party {name}")
            elif layer == "domain" and top in DOMAIN_FORBIDDEN_STDLIB:
                violations.append(f"{path.relative_to(PACKAGE)} imports {name} (domain does no I/O)")
    assert violations == []


def test_domain_has_no_async_code() -> None:
    for path in modules_in("domain"):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(node, ast.AsyncFunctionDef | ast.Await) for node in ast.walk(tree)), path


def test_checker_catches_an_outward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from chat4all.entrypoints.cli import main\n")
    assert "chat4all.entrypoints.cli" in imports_of(bad)
