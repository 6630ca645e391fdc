"""Inputs of counterfactual translation: given cells, partially noised, new conditions."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd

from scdiff._errors import InputError, arg
from scdiff.model._setup import ModelParts
from scdiff.model._space import encode_cells


def translation_inputs(
    parts: ModelParts,
    source: ad.AnnData,
    condition: Mapping[str, str] | None,
    dose: Mapping[str, float] | None,
    strength: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, int]:
    """(target conditions, the cells' own conditions, the cells in the network's space,
    start timestep) for translating ``source``.

    Each cell keeps its own value of every attribute not named in ``condition``/``dose``
    (its cell type, say); attributes absent from ``source.obs`` and not named are drawn
    in training proportions. The cells' own conditions are the target ones with each
    named attribute set back to the cell's value where ``source.obs`` has it.
    """
    if not isinstance(source, ad.AnnData):
        raise InputError(f"the cells to translate need to be an AnnData, got {type(source).__name__}.")
    if source.n_obs == 0:
        raise InputError("the cells to translate hold no cells; nothing to translate.")
    if not (isinstance(strength, (int, float)) and 0.0 < float(strength) <= 1.0):
        raise InputError(f"{arg('strength', strength)} needs to be in (0, 1]: the fraction of the "
                         "diffusion the cells are noised to (e.g. 0.6).")
    condition, dose = dict(condition or {}), dict(dose or {})
    enc = parts.encoder
    frame = enc.request_obs(source.n_obs, condition, dose, rng)
    own = frame.copy()
    for key in enc.attributes:
        if key in source.obs.columns:
            col = source.obs[key]
            own[key] = (col.astype(str) if key in enc.keys else col.astype(float)).to_numpy()
            if key not in condition and key not in dose:
                frame[key] = own[key]
    z = encode_cells(parts, source, "the cells to translate")
    t_start = int(round(float(strength) * (parts.schedule.num_timesteps - 1)))
    return frame, own, z, t_start
