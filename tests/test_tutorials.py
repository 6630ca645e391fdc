"""The tutorials run end to end at small settings and draw their figures.

Each tutorial is a plain script in ``tutorials/``; here it runs as a user would run it
(``python tutorials/NAME.py`` from the repository root) with ``SCDIFF_TUTORIAL_QUICK=1``
(a few hundred training steps) and its output in a temporary folder. The docs show the
same scripts, and figures made by running them without ``SCDIFF_TUTORIAL_QUICK``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

# tutorial -> (output folder, figures it must draw)
TUTORIALS = {
    "01_pbmc.py": ("pbmc", ["loss.png", "metrics.png", "umap.png", "mean_scatter.png", "markers.png"]),
    "02_rare_cells.py": ("rare_cells", ["augmentation.png"]),
    "03_dose_response.py": ("dose_response", ["dose_response.png"]),
    "04_tabular.py": ("tabular", ["wine.png"]),
}


def run_tutorial(name: str, out: Path) -> dict:
    # one thread: the suite shares two cores, and torch's thread pool fights itself there
    env = {**os.environ, "SCDIFF_TUTORIAL_QUICK": "1", "SCDIFF_TUTORIAL_OUT": str(out),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(ROOT / "tutorials" / name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    folder, figures = TUTORIALS[name]
    for fig in figures:
        path = out / folder / fig
        assert path.exists() and path.stat().st_size > 5000, f"{name} did not draw {fig}"
    return json.loads((out / folder / "results.json").read_text())


def test_pbmc_tutorial(tmp_path):
    results = run_tutorial("01_pbmc.py", tmp_path)
    assert results["mean_pearson"] > 0.8  # even 150 steps get the per-gene means right
    assert (tmp_path / "pbmc" / "run" / "config.json").exists()


def test_rare_cells_tutorial(tmp_path):
    results = run_tutorial("02_rare_cells.py", tmp_path)
    assert len(results["rare_types"]) >= 2
    for key in ("real", "real + oversampled", "real + scdiff", "real + scdiff (guidance 2)"):
        assert 0 < results[f"balanced_accuracy[{key}]"] <= 1


def test_dose_response_tutorial(tmp_path):
    results = run_tutorial("03_dose_response.py", tmp_path)
    assert set(results) >= {"response_pearson[type_0+drugA]", "response_pearson[type_2+drugB]"}


def test_tabular_tutorial(tmp_path):
    results = run_tutorial("04_tabular.py", tmp_path)
    assert results["balanced_accuracy[train on real]"] > 0.85
    assert 0 <= results["detection_auc[generated]"] <= 1 and results["dcr[floor]"] > 0
    # the raw table goes in and the same columns come out
    generated = pd.read_csv(tmp_path / "tabular" / "generated.csv")
    train = pd.read_csv(tmp_path / "tabular" / "wine_train.csv")
    assert list(generated.columns) == list(train.columns)
    assert generated.dtypes.equals(train.dtypes)


def test_every_tutorial_is_tested():
    scripts = {p.name for p in (ROOT / "tutorials").glob("[0-9]*.py")}
    assert scripts == set(TUTORIALS)


@pytest.mark.parametrize("name", sorted(TUTORIALS))
def test_tutorial_has_a_docs_page_with_its_figures(name):
    """Each tutorial's docs page includes the script and shows figures committed beside it."""
    folder, figures = TUTORIALS[name]
    page = ROOT / "docs" / "tutorials" / f"{folder.replace('_', '-')}.md"
    text = page.read_text()
    assert f"tutorials/{name}" in text
    for fig in figures:
        png = ROOT / "docs" / "tutorials" / "figures" / folder / fig
        assert png.exists(), f"{png} missing: run the tutorial without SCDIFF_TUTORIAL_QUICK"
        assert png.stat().st_size < 300_000, f"{png} is larger than 300 KB"
