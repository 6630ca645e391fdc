"""The codebase's shape, checked by machine: one-way layers, small files and functions,
library messages that speak Python, and an ``import scdiff`` that is quick and works from
any folder."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src" / "scdiff"
BIN = Path(sys.executable).parent
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _library_files(*, cli: bool = True) -> list[Path]:
    return [p for p in sorted(LIBRARY.rglob("*.py")) if cli or "cli" not in p.relative_to(LIBRARY).parts]


def test_import_contracts_hold():
    """pyproject.toml's import-linter contracts: no upward import, no cycle between layers."""
    done = subprocess.run([BIN / "lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and " 0 broken" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def test_ruff_is_clean_with_the_size_limits():
    done = subprocess.run([BIN / "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_library_files_are_small():
    long = {str(p.relative_to(ROOT)): n for p in _library_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"split these files (over {MAX_FILE_LINES} lines): {long}"


def _code_lines(source: list[str], node: ast.FunctionDef) -> int:
    """Lines of a function that hold code: no blank line, comment or docstring."""
    body = node.body
    doc = set()
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        doc = set(range(body[0].lineno, body[0].end_lineno + 1))
    lines = range(node.lineno, node.end_lineno + 1)
    return sum(1 for i in lines if i not in doc and source[i - 1].strip()
               and not source[i - 1].strip().startswith("#"))


def test_library_functions_are_short():
    long = {}
    for path in _library_files():
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _code_lines(text.splitlines(), node)
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines of code): {long}"


FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _strings(node: ast.AST):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _messages(tree: ast.AST):
    """String pieces of every raised exception and every warning."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            yield node.lineno, list(_strings(node.exc))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "warn":
            yield node.lineno, list(_strings(node))


def test_library_messages_name_python_parameters_not_flags():
    """Outside scdiff.cli, no error or warning names a command-line flag: messages mention
    parameters with scdiff._errors.arg, which the CLI's boundary spells as flags."""
    found = []
    for path in _library_files(cli=False):
        for line, parts in _messages(ast.parse(path.read_text())):
            found += [f"{path.relative_to(ROOT)}:{line}: {p!r}" for p in parts if FLAG.search(p)]
    assert not found, found


def test_the_scan_finds_a_flag():
    tree = ast.parse('raise InputError(f"{path} exists; pass --overwrite.")')
    assert any(FLAG.search(p) for _, parts in _messages(tree) for p in parts)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def test_import_scdiff_is_quick_and_lazy(tmp_path):
    """``import scdiff`` loads neither torch nor anndata; a name loads them when first used."""
    done = _python("import sys, scdiff\n"
                   "heavy = ('torch', 'anndata', 'scanpy', 'matplotlib')\n"
                   "print(sorted(m for m in heavy if m in sys.modules))\n"
                   "scdiff.ConditionalDiffusion\n"
                   "print('torch' in sys.modules, callable(scdiff.evaluate), 'write_report' in dir(scdiff))",
                   tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True True True"]


def test_import_scdiff_works_from_the_clones_parent_folder(tmp_path):
    """A clone named scdiff next to the working folder is not mistaken for the package."""
    (tmp_path / "scdiff").symlink_to(ROOT, target_is_directory=True)
    done = _python("import scdiff; print(scdiff.__file__); print(scdiff.ConditionalDiffusion.__name__)",
                   tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(LIBRARY / "__init__.py"), "ConditionalDiffusion"]


@pytest.mark.parametrize("name", ["metrics", "pl", "perturb", "datasets", "commands", "model", "data"])
def test_subpackages_are_reachable_as_attributes(name, tmp_path):
    done = _python(f"import scdiff; print(scdiff.{name}.__name__)", tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"scdiff.{name}", done.stderr
