"""Settings shared by the tutorials: where figures go and how long to train.

``SCDIFF_TUTORIAL_OUT`` names the folder for figures and results (default
``runs/tutorials/``); ``SCDIFF_TUTORIAL_QUICK=1`` shrinks every run to seconds (what
the test suite uses); without it the tutorials train as the docs show.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

QUICK = os.environ.get("SCDIFF_TUTORIAL_QUICK", "") not in ("", "0")


def output_dir(name: str) -> Path:
    """The folder this tutorial writes its figures and ``results.json`` to."""
    out = Path(os.environ.get("SCDIFF_TUTORIAL_OUT", "runs/tutorials")) / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_results(out: Path, results: dict) -> None:
    """Write the tutorial's key numbers, so the tests (and readers) can check them."""
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    for key, value in results.items():
        print(f"{key}: {value}")
