"""The package's shape (issue 16): rooms by job, none too large, serving independent of scenarios.

Run as a script (``python tests/unit/test_layout.py``) it prints every file and function over
its limit; as a test it asserts there are none, and that the import rules of each room hold."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 400  # agent/ and its sub-packages
MAX_FUNCTION_LINES = 80  # agent/, baking/, memory/, tools/


def python_files(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def long_files() -> list[str]:
    return [f"{p.relative_to(ROOT)}: {n} lines" for p in python_files("agent")
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]


def long_functions() -> list[str]:
    found = []
    for path in python_files("agent", "baking", "memory", "tools"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if (n := node.end_lineno - first + 1) > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    return found


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-local imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imports_of(package: str, forbidden: str) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {m}" for p in python_files(package) for m in sorted(imported_modules(p))
            if m == forbidden or m.startswith(forbidden + ".")]


def test_no_agent_file_is_over_400_lines():
    assert long_files() == []


def test_no_function_is_over_80_lines():
    assert long_functions() == []


def test_serving_does_not_import_scenarios():
    assert imports_of("agent/serving", "agent.scenario") == []


def test_runtime_does_not_import_scenarios():
    assert imports_of("agent/runtime", "agent.scenario") == []


def test_baking_and_memory_stand_alone():
    assert imports_of("baking", "agent") == [] and imports_of("memory", "agent") == []


if __name__ == "__main__":
    for line in long_files() + long_functions():
        print(line)
    for package, forbidden in (("agent/serving", "agent.scenario"), ("agent/runtime", "agent.scenario"),
                               ("baking", "agent"), ("memory", "agent")):
        for line in imports_of(package, forbidden):
            print(line)
