"""The documentation site: every page, figure and included snippet exists, the concepts
page covers every metric, and the getting-started page runs as written.

The site itself is built with ``mkdocs build --strict`` in CI (``.ci/run``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


# Pages other engineers write; the strict build checks them, these tests do not.
OTHER_OWNERS = {"errors.md", "performance.md", "perturbation.md"}


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p.name not in OTHER_OWNERS)


def test_nav_names_existing_pages():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    missing = [p for p in pages if not (DOCS / p).exists()]
    assert not missing, f"mkdocs.yml nav names missing pages: {missing}"
    assert {"getting-started.md", "concepts.md", "troubleshooting.md", "cli.md"} <= set(pages)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_images_exist_and_are_small(page):
    for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
        if "://" in target:
            continue
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name} shows {target}, which does not exist"
        assert path.stat().st_size < 300_000, f"{target} is over 300 KB"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_snippets_exist(page):
    for path, section in re.findall(r'--8<-- "([^":]+)(?::([\w-]+))?"', page.read_text()):
        source = ROOT / path
        assert source.exists(), f"{page.name} includes {path}, which does not exist"
        if section:
            assert f"--8<-- [start:{section}]" in source.read_text(), f"{path} has no section {section}"


def test_no_placeholder_left():
    for page in _pages():
        assert not re.search(r"\b(RESULTS|RUNTIME)_[A-Z]+\b", page.read_text()), page.name


def test_concepts_explain_every_metric():
    from scdiff.metrics import METRICS

    text = (DOCS / "concepts.md").read_text()
    missing = [m for m in METRICS if f"`{m}`" not in text]
    assert not missing, f"concepts.md does not explain {missing}"


def test_cli_reference_is_generated_from_the_app():
    import typer.main

    from scdiff.cli import app

    command = typer.main.get_command(app)
    assert {"train", "sample", "evaluate", "info"} <= set(command.commands)
    assert "<!-- scdiff-cli-reference -->" in (DOCS / "cli.md").read_text()
    import importlib.util

    spec = importlib.util.spec_from_file_location("scdiff_docs_hooks", DOCS / "_hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    reference = hooks.cli_reference()
    for name in command.commands:
        assert f"`scdiff {name}`" in reference
    for option in ("--version", "--install-completion", "--quiet", "--json", "--out", "--like"):
        assert option in reference


def _blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.slow  # about 2 CPU-minutes (two UMAPs, two evaluations); .ci/run runs it
def test_getting_started_runs_as_written(tmp_path, monkeypatch):
    """The page's Python, then its commands, in a fresh folder with the example data; only
    the training is shortened (``model.train()`` -> 60 steps, ``--steps 60`` for the CLI)."""
    from typer.testing import CliRunner

    from scdiff.cli import app

    page = DOCS / "getting-started.md"
    (tmp_path / "data_examples").symlink_to(ROOT / "data_examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    code = "\n".join(_blocks(page, "python"))
    assert "model.train()" in code and "scdiff.pl.compare(" in code
    code = code.replace("model.train()", "model.train(steps=60, progress=False)")
    exec(compile(code, str(page), "exec"), {"__name__": "__getting_started__"})
    assert (tmp_path / "umap.png").stat().st_size > 5000
    assert (tmp_path / "runs" / "pbmc" / "config.json").exists()

    shell = "\n".join(b for b in _blocks(page, "bash") if "scdiff train" in b)
    commands = [c.strip() for c in shell.replace("\\\n", " ").splitlines() if c.startswith("scdiff ")]
    assert [c.split()[1] for c in commands] == ["train", "sample", "evaluate", "info"]
    runner = CliRunner()
    for command in commands:
        args = command.split()[1:]
        if args[0] == "train":
            args += ["--steps", "60", "--quiet"]
        args = ["runs/pbmc_cli" if a == "runs/pbmc" else a for a in args]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{command}: {result.output}"
    assert (tmp_path / "report" / "umap.png").exists()
