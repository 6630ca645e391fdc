"""The pure-torch parts of scdiff, importable on a machine without AnnData.

``import scdiff`` loads the AnnData layer (anndata, zarr, safetensors, scikit-learn).
The throughput benchmark needs only the network, the schedule, the sampler and the
trainer, which are pure torch; where anndata is missing (a bare GPU image) the
package is registered without running its ``__init__`` so those modules still load.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path


def torch_parts():
    """(ConditionalMLP, NoiseSchedule, Guidance, sample_loop, train module)."""
    try:
        import anndata  # noqa: F401
        import safetensors  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        missing = True
    else:
        missing = False
    if missing and "scdiff" not in sys.modules:
        root = Path(__file__).resolve().parents[1] / "scdiff"
        pkg = types.ModuleType("scdiff")
        pkg.__path__ = [str(root)]
        sys.modules["scdiff"] = pkg
    from scdiff import train
    from scdiff.diffusion import Guidance, NoiseSchedule, sample_loop
    from scdiff.nn import ConditionalMLP

    return ConditionalMLP, NoiseSchedule, Guidance, sample_loop, train
