"""Small rooms: a source file a reader can hold in mind, functions that fit on a screen, and one
place that reads the configuration. Migrations are exempt from the size rules: each is one schema
change, read top to bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "chat4all"
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 40
EXEMPT_FROM_SIZES = ("adapters/sql/migrations/versions/",)
SETTINGS_MODULE = "entrypoints/settings.py"


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else path.name


def sized(path: Path) -> bool:
    return not name(path).startswith(EXEMPT_FROM_SIZES)


def long_functions(path: Path) -> list[str]:
    """Functions (methods and nested ones too) longer than allowed, counted from `def` to their
    last line, docstring and comments included."""
    return [
        f"{name(path)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def reads_the_environment(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "getenvb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ("environ", "getenv", "environb", "getenvb") for alias in node.names):
                return True
    return False


def test_no_source_file_is_over_300_lines() -> None:
    too_long = [
        f"{name(path)} ({length} lines)"
        for path in sources()
        if sized(path) and (length := len(path.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert too_long == []


def test_no_function_is_over_40_lines() -> None:
    assert [found for path in sources() if sized(path) for found in long_functions(path)] == []


def test_only_the_settings_module_reads_the_environment() -> None:
    assert sorted(name(path) for path in sources() if reads_the_environment(path)) == [SETTINGS_MODULE]


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import os\nvalue = os.environ.get('X')\n", True),
        ("import os\nvalue = os.getenv('X')\n", True),
        ("from os import environ\n", True),
        ("import os\npath = os.path.join('a', 'b')\n", False),
    ],
)
def test_the_environment_check_sees_each_way_of_reading_it(tmp_path: Path, source: str, flagged: bool) -> None:
    module = tmp_path / "module.py"
    module.write_text(source)
    assert reads_the_environment(module) is flagged


def test_the_function_check_counts_from_def_to_the_last_line(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    body = "\n".join(f"    x{line} = {line}" for line in range(MAX_FUNCTION_LINES - 1))
    module.write_text(f"def fits():\n{body}\n\n\ndef too_long():\n{body}\n    return x0\n")
    assert [found.split()[1] for found in long_functions(module)] == ["too_long"]
