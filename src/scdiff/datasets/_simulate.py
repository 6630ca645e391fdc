"""Simulate a dose-response single-cell experiment with known ground truth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.datasets._params import draw_params
from scdiff.datasets._truth import _log_rate, draw_cells, gene_names

HOLDOUT_KINDS = ["", "iid", "dose", "combination"]


def simulate(
    *,
    n_cells: int = 3000,
    n_genes: int = 500,
    n_cell_types: int = 3,
    drugs: Sequence[str] = ("control", "drugA", "drugB"),
    control: str = "control",
    doses: Sequence[float] = (10.0, 50.0, 100.0, 500.0, 1000.0),
    held_out_doses: Sequence[float] = (50.0,),
    held_out_combinations: Sequence[tuple[str, str]] | None = None,
    iid_fraction: float = 0.2,
    n_markers: int = 10,
    n_response_genes: tuple[int, int] = (20, 40),
    seed: int = 0,
) -> AnnData:
    """Simulate cell types x drugs x doses, with the generating parameters known.

    Each cell type has its own baseline program (a log-normal mean profile plus
    ``n_markers`` up-regulated marker genes). Each treated drug moves its own
    20-40 response genes (some up, some down) along a Hill curve in dose,
    ``lfc(d) = Emax * w_g * s_c * d^h / (EC50^h + d^h)`` in natural-log units,
    with per-drug ``EC50``, ``h`` and ``Emax``, a per-gene weight ``w_g`` and a
    per-cell-type scale ``s_c`` in [0.5, 1.5]; about a fifth of the response
    genes respond in one cell type only. Counts are negative binomial
    (gamma-Poisson) around a log-normal library size times the mean profile.

    Parameters
    ----------
    n_cells
        Number of cells, spread evenly over the conditions: per cell type, one
        control group and one group per treated drug and dose.
    n_genes
        Number of genes, named ``gene_0000``, ``gene_0001``, ...
    n_cell_types
        Number of cell types, named ``type_0``, ``type_1``, ...
    drugs
        Drug names, including ``control``.
    control
        The untreated drug; its cells have dose 0.
    doses
        Positive doses given to every treated drug.
    held_out_doses
        Doses whose cells are all in the test split, for every treated drug.
    held_out_combinations
        ``(cell_type, drug)`` pairs whose cells (all doses) are all in the test
        split. Default: the last cell type with the last drug.
    iid_fraction
        Fraction of the remaining cells put in the test split at random.
    n_markers
        Marker genes per cell type.
    n_response_genes
        Inclusive range of the number of response genes per treated drug.
    seed
        Seed; the result is a function of the arguments. The ground-truth
        parameters depend on the seed and the design, not on ``n_cells``.

    Returns
    -------
    AnnData
        The simulated cells:

        - ``X``: log1p of counts per 10k, float32 CSR.
        - ``layers["counts"]``: raw counts, integer-valued float32 CSR.
        - ``obs``: ``cell_type``, ``drug`` (categorical), ``dose`` (float, 0 for
            control), ``n_counts``, ``split`` (``"train"``/``"test"``) and
            ``holdout`` (``"iid"``, ``"dose"``, ``"combination"``, or ``""`` in train).
        - ``var``: ``marker_of`` (cell type or ``""``), ``response_drug`` (drug or
            ``""``), ``response_sign`` (+1, -1, 0), ``response_cell_type`` (the only
            cell type a response gene reacts in, or ``""`` for all).
        - ``uns["simulation"]``: the design and ground truth (``ec50``, ``hill``,
            ``emax``, ``cell_type_scale``, ``base_log_mean``, ``max_lfc``,
            ``dispersion``, ...); pass the AnnData to :func:`true_mean` for the
            expected profile of any condition, including unseen doses.

    Examples
    --------
    >>> from scdiff.datasets import simulate
    >>> adata = simulate(n_cells=1000, n_genes=200, seed=0)
    >>> adata.shape
    (1000, 200)
    >>> sorted(adata.obs["holdout"].unique())
    ['', 'combination', 'dose', 'iid']
    >>> train = adata[adata.obs["split"] == "train"]
    >>> bool((train.obs["dose"] == 50.0).any())
    False
    """
    drugs, doses = list(drugs), [float(d) for d in doses]
    cell_types = [f"type_{i}" for i in range(n_cell_types)]
    _check(n_cells, n_genes, n_cell_types, drugs, control, doses, held_out_doses, iid_fraction)
    treated = [d for d in drugs if d != control]
    if held_out_combinations is None:
        held_out_combinations = [(cell_types[-1], treated[-1])] if treated else []
    combos = _check_combinations(held_out_combinations, cell_types, treated)
    param_seq, cell_seq = np.random.SeedSequence(seed).spawn(2)
    params = draw_params(
        np.random.default_rng(param_seq),
        n_genes=n_genes,
        cell_types=cell_types,
        drugs=drugs,
        control=control,
        doses=doses,
        n_markers=n_markers,
        n_response_genes=n_response_genes,
    )
    var_cols = params.pop("_var")

    groups = [(ct, control, 0.0) for ct in cell_types]
    groups += [(ct, d, x) for ct in cell_types for d in treated for x in doses]
    sizes = np.full(len(groups), n_cells // len(groups))
    sizes[: n_cells % len(groups)] += 1
    rng = np.random.default_rng(cell_seq)
    group_of = rng.permutation(np.repeat(np.arange(len(groups)), sizes))
    rates = np.exp(np.stack([_log_rate(params, *g) for g in groups]))

    counts, x = draw_cells(rng, params, rates, group_of)

    obs = _obs(rng, groups, group_of, counts, cell_types, drugs, held_out_doses, combos, iid_fraction)
    var = pd.DataFrame({k: v if k == "response_sign" else v.astype(str) for k, v in var_cols.items()},
                       index=gene_names(n_genes))
    params.update(
        seed=int(seed),
        n_cells=int(n_cells),
        held_out_doses=[float(d) for d in held_out_doses],
        held_out_combinations=[list(c) for c in combos],
        iid_fraction=float(iid_fraction),
    )
    return AnnData(X=x, obs=obs, var=var, layers={"counts": counts}, uns={"simulation": params})


def _check_combinations(held_out_combinations, cell_types: list[str], treated: list[str]
                        ) -> list[tuple[str, str]]:
    combos = [(str(c), str(d)) for c, d in held_out_combinations]
    for c, d in combos:
        if c not in cell_types or d not in treated:
            raise InputError(
                f"held_out_combinations entry ({c!r}, {d!r}) needs a cell type in {cell_types} "
                f"and a treated drug in {treated}."
            )
    return combos


def _obs(rng: np.random.Generator, groups: list[tuple], group_of: np.ndarray, counts, cell_types,
         drugs, held_out_doses, combos, iid_fraction: float) -> pd.DataFrame:
    """Each cell's condition, total counts, and which split (and held-out kind) it is in."""
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([groups[g][0] for g in group_of], categories=cell_types),
            "drug": pd.Categorical([groups[g][1] for g in group_of], categories=drugs),
            "dose": np.array([groups[g][2] for g in group_of], dtype=float),
            "n_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.float32),
        },
        index=pd.Index([f"cell_{i:05d}" for i in range(len(group_of))]),
    )
    obs["holdout"] = pd.Categorical(
        _assign_holdout(rng, obs, held_out_doses, combos, iid_fraction), categories=HOLDOUT_KINDS
    )
    obs["split"] = pd.Categorical(
        np.where(obs["holdout"] == "", "train", "test"), categories=["train", "test"]
    )
    return obs


def _assign_holdout(
    rng: np.random.Generator,
    obs: pd.DataFrame,
    held_out_doses: Sequence[float],
    combos: Sequence[tuple[str, str]],
    iid_fraction: float,
) -> np.ndarray:
    """Hold-out kind of each cell; a combination outranks a dose, a dose outranks iid."""
    kind = np.full(len(obs), "", dtype=object)
    kind[obs["dose"].isin([float(d) for d in held_out_doses]).to_numpy()] = "dose"
    for ct, drug in combos:
        kind[((obs["cell_type"] == ct) & (obs["drug"] == drug)).to_numpy()] = "combination"
    rest = np.flatnonzero(kind == "")
    kind[rng.choice(rest, size=int(round(iid_fraction * rest.size)), replace=False)] = "iid"
    return kind


def _check(
    n_cells: int,
    n_genes: int,
    n_cell_types: int,
    drugs: list[str],
    control: str,
    doses: list[float],
    held_out_doses: Sequence[float],
    iid_fraction: float,
) -> None:
    if n_cell_types < 1 or n_genes < 1 or n_cells < 1:
        raise InputError("n_cells, n_genes and n_cell_types need to be >= 1.")
    if control not in drugs:
        raise InputError(f"control = {control!r} needs to be one of drugs = {drugs}.")
    if len(set(drugs)) != len(drugs):
        raise InputError(f"drugs = {drugs} has a repeated name; give each drug once.")
    if not doses or min(doses) <= 0 or len(set(doses)) != len(doses):
        raise InputError(f"doses = {doses} needs distinct positive values; control gets dose 0.")
    missing = [d for d in held_out_doses if float(d) not in doses]
    if missing:
        raise InputError(f"held_out_doses {missing} need to be among doses = {doses}.")
    if not 0.0 <= iid_fraction < 1.0:
        raise InputError(f"iid_fraction = {iid_fraction} needs to be in [0, 1).")
