"""Small rooms: a source file a reader can hold in mind, functions that fit on a screen, and one
place that reads the configuration. Migrations are exempt from the size rules: each is one schema
change, read top to bottom. The file size rule holds for the tests and the benchmarks too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "chat4all"
TESTS_AND_BENCHMARKS = (REPO / "tests", REPO / "benchmarks")
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 40
EXEMPT_FROM_SIZES = ("adapters/sql/migrations/versions/",)
SETTINGS_MODULE = "entrypoints/settings.py"


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def files_of_tests_and_benchmarks() -> list[Path]:
    return sorted(path for folder in TESTS_AND_BENCHMARKS for path in folder.rglob("*.py"))


def name(path: Path) -> str:
    if path.is_relative_to(PACKAGE):
        return path.relative_to(PACKAGE).as_posix()
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name


def too_long(paths: list[Path]) -> list[str]:
    return [
        f"{name(path)} ({length} lines)"
        for path in paths
        if sized(path) and (length := len(path.read_text().splitlines())) > MAX_FILE_LINES
    ]


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
    assert too_long(sources()) == []


def test_no_test_or_benchmark_file_is_over_300_lines() -> None:
    assert too_long(files_of_tests_and_benchmarks()) == []


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


def test_the_file_check_counts_lines_up_to_the_limit(tmp_path: Path) -> None:
    fits, over = tmp_path / "fits.py", tmp_path / "over.py"
    fits.write_text("x = 1\n" * MAX_FILE_LINES)
    over.write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    assert too_long([fits, over]) == [f"over.py ({MAX_FILE_LINES + 1} lines)"]
