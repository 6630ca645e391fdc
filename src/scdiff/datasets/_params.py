"""Draw the ground-truth parameters of a simulated perturbation experiment.

The parameters depend only on the seed and the design (genes, cell types,
drugs, doses), never on the number of cells, so two data sets simulated with
the same seed but different sizes share one ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scdiff._errors import InputError

# Median counts per gene of an untreated cell (its library size is this times
# n_genes, like a subset of highly variable genes in 10x 3' UMI data), the
# spread of log gene means, and the spread of log library sizes. Together
# they give 60-80% zeros.
COUNTS_PER_GENE = 1.5
GENE_LOG_SD = 2.0
LIBRARY_LOG_SD = 0.35


def draw_params(
    rng: np.random.Generator,
    *,
    n_genes: int,
    cell_types: Sequence[str],
    drugs: Sequence[str],
    control: str,
    doses: Sequence[float],
    n_markers: int,
    n_response_genes: tuple[int, int],
) -> dict[str, Any]:
    """Draw baseline programs, drug responses and noise; return JSON-able types.

    ``base_log_mean[c][g]`` is the natural log of the expected count of gene ``g``
    in an untreated cell of type ``c`` with size factor 1.  ``max_lfc[drug][c][g]``
    is the natural-log fold change that the drug reaches at saturating dose; at
    dose ``d`` the fold change is ``max_lfc * hill_curve(d, ec50, hill)``.
    """
    n_types = len(cell_types)
    treated = [d for d in drugs if d != control]
    lo, hi = n_response_genes
    n_resp = {d: int(rng.integers(lo, hi + 1)) for d in treated}
    needed = n_types * n_markers + sum(n_resp.values())
    if needed > 0.6 * n_genes:
        raise InputError(
            f"n_genes = {n_genes} is too small for {n_types} cell types x {n_markers} markers "
            f"and {sum(n_resp.values())} response genes: "
            f"use n_genes >= {int(np.ceil(needed / 0.6))}."
        )
    library_size = COUNTS_PER_GENE * n_genes
    order, base, markers, marker_of = _baseline(rng, n_genes, cell_types, n_markers, library_size)
    taken = set(markers.tolist())
    resp_pool = np.array([g for g in order[::-1] if g not in taken])
    resp_pool = resp_pool[: max(sum(n_resp.values()), n_genes // 2)]
    resp_genes = rng.choice(resp_pool, size=sum(n_resp.values()), replace=False)
    responses = _responses(rng, treated, n_resp, resp_genes, cell_types, n_genes, doses)
    dispersion = np.exp(rng.normal(np.log(3.0), 0.5, size=n_genes))
    return {
        "cell_types": list(cell_types), "drugs": list(drugs), "control": control,
        "doses": [float(d) for d in doses],
        **{k: responses[k] for k in ("ec50", "hill", "emax", "cell_type_scale")},
        "library_size": library_size, "library_log_sd": LIBRARY_LOG_SD,
        "base_log_mean": base.tolist(), "max_lfc": responses["max_lfc"],
        "dispersion": dispersion.tolist(),
        "_var": {"marker_of": marker_of, **responses["_var"]},
    }


def _baseline(rng: np.random.Generator, n_genes: int, cell_types: Sequence[str], n_markers: int,
              library_size: float):
    """(genes by shared expression, base log means per type, markers, each gene's marked type)."""
    # Shared log-normal expression profile, scaled so a size-factor-1 cell
    # holds `library_size` counts; the wide spread gives realistic dropout.
    n_types = len(cell_types)
    shared = rng.normal(0.0, GENE_LOG_SD, size=n_genes)
    shared += np.log(library_size) - np.log(np.exp(shared).sum())
    base = shared[None, :] + rng.normal(0.0, 0.25, size=(n_types, n_genes))
    # Markers come from the low-to-mid expressed genes so that their
    # up-regulation makes them specific; responders come from the expressed
    # genes so that down-regulation is visible.
    order = np.argsort(shared)
    marker_pool = order[: int(0.7 * n_genes)]
    markers = rng.choice(marker_pool, size=n_types * n_markers, replace=False)
    marker_of = np.full(n_genes, "", dtype=object)
    for c, name in enumerate(cell_types):
        genes = markers[c * n_markers : (c + 1) * n_markers]
        marker_of[genes] = name
        base[c, genes] += np.log(rng.uniform(4.0, 10.0, size=n_markers))
    return order, base, markers, marker_of


def _responses(rng: np.random.Generator, treated: list[str], n_resp: dict[str, int],
               resp_genes: np.ndarray, cell_types: Sequence[str], n_genes: int,
               doses: Sequence[float]) -> dict[str, Any]:
    """Each drug's Hill curve, its responding genes and their fold changes per cell type."""
    n_types = len(cell_types)
    var = {"response_drug": np.full(n_genes, "", dtype=object),
           "response_sign": np.zeros(n_genes, dtype=np.int8),
           "response_cell_type": np.full(n_genes, "", dtype=object)}
    dose_arr = np.asarray(doses, dtype=float)
    lo_ec50, hi_ec50 = 2.0 * dose_arr.min(), dose_arr.max() / 4.0
    if hi_ec50 <= lo_ec50:
        lo_ec50, hi_ec50 = dose_arr.min(), dose_arr.max()
    out: dict[str, Any] = {"ec50": {}, "hill": {}, "emax": {}, "cell_type_scale": {}, "max_lfc": {}}
    start = 0
    for drug in treated:
        genes = np.sort(resp_genes[start : start + n_resp[drug]])
        start += n_resp[drug]
        out["ec50"][drug] = float(np.exp(rng.uniform(np.log(lo_ec50), np.log(hi_ec50))))
        out["hill"][drug] = float(rng.uniform(1.0, 2.5))
        emax = out["emax"][drug] = float(rng.uniform(1.0, 2.0))
        scale = out["cell_type_scale"][drug] = {ct: float(rng.uniform(0.5, 1.5)) for ct in cell_types}
        sign = np.where(rng.random(genes.size) < 0.6, 1, -1).astype(np.int8)
        weight = rng.uniform(0.5, 1.0, size=genes.size)
        lfc = np.zeros((n_types, n_genes))
        for c, ct in enumerate(cell_types):
            lfc[c, genes] = sign * weight * emax * scale[ct]
        # About one responder in five reacts in a single cell type only.
        specific = rng.random(genes.size) < 0.2
        owner = rng.integers(0, n_types, size=genes.size)
        for g, own in zip(genes[specific], owner[specific], strict=True):
            lfc[np.arange(n_types) != own, g] = 0.0
            var["response_cell_type"][g] = cell_types[own]
        var["response_drug"][genes] = drug
        var["response_sign"][genes] = sign
        out["max_lfc"][drug] = lfc.tolist()
    return {**out, "_var": var}
