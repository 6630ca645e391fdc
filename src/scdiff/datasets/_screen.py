"""Simulate a drug screen (cell lines x drugs x doses, and pairs) whose drugs' features set
their effects: how strongly each drug hits each pathway, its potency, and descriptors that do
nothing. A model that reads the features can, in principle, predict unseen drugs and pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError
from scdiff.data._sets import member_doses as _member_doses
from scdiff.datasets._params import COUNTS_PER_GENE, LIBRARY_LOG_SD, _baseline
from scdiff.datasets._truth import TruthScale, draw_cells, gene_names, hill_curve, true_mean

HOLDOUT_KINDS = ["", "iid", "dose", "combination", "unseen_drug", "pair"]
CONTROL = "control"
KAPPA = 1.5  # strength of a pair's interaction
N_MARKERS = 10  # marker genes per cell line
PATHWAY_GENES = (25, 40)  # inclusive range of the genes of one pathway
INTERACTION_GENES = (15, 20)  # and of the interaction programme
EFFECT = 1.5  # scale of the pathways' loadings: a saturating drug moves its genes ~1-2 nats


def simulate_screen(
    *,
    n_cells_per_condition: int = 30, n_genes: int = 400, n_cell_lines: int = 3,
    n_drugs: int = 10, n_unseen: int = 2, n_pathways: int = 5, n_distractors: int = 3,
    doses: Sequence[float] = (10.0, 100.0, 1000.0, 10000.0), held_out_dose: float = 1000.0,
    n_pairs: int = 10, n_held_out_pairs: int = 3, pair_dose: float = 1000.0,
    held_out_combination: tuple[str, str] | None = None, iid_fraction: float = 0.15,
    seed: int = 0, draw: int = 0,
) -> AnnData:
    """Simulate a drug screen (lines x drugs x doses, and pairs) whose drugs' features set their effects.

    Each cell line has a log-normal baseline with ``10`` marker genes. Each of ``n_pathways``
    pathways moves 25-40 expressed genes with signed loadings ``l_p`` (up with probability
    0.6, magnitude 0.75-1.5). Drug ``m`` targets 1 or 2 pathways with strengths ``t[m, p]`` in
    0.6-1.2, and line ``c`` responds to pathway ``p`` with sensitivity ``s[c, p]`` in 0.4-1.6:
    at dose ``d`` the log fold change is ``H_m(d) * sum_p t[m, p] s[c, p] l_p``, with ``H_m``
    the Hill curve of the drug's ``EC50`` and hidden Hill coefficient (1-2.5). A pair of
    drugs, each at ``pair_dose``, adds both effects and an interaction
    ``kappa * H_A * H_B * (t_A' W t_B) * l_int`` on 15-20 genes, with ``W`` a random symmetric
    pathway x pathway matrix (entries in -1..1) and ``kappa = 1.5``. All in natural log;
    counts are negative binomial around a log-normal library size times the rate.

    Parameters
    ----------
    n_cells_per_condition, n_genes, n_cell_lines
        Cells in each condition (per line: the control, every drug at every dose, every
        pair), genes ``gene_0000``, ... and lines ``line_0``, ...
    n_drugs, n_unseen
        Measured drugs ``drug_00``, ... (every pathway is targeted by two or more of them),
        and the further drugs after them, whose cells are all held out (``"unseen_drug"``).
    n_pathways, n_distractors
        Pathways a drug can target, and feature columns ``descriptor_0``, ... (standard
        normal) that have no effect.
    doses, held_out_dose
        Positive doses of every single drug, and the one of them whose single-drug cells
        are all held out (``"dose"``).
    n_pairs, n_held_out_pairs, pair_dose
        Distinct pairs of measured drugs, how many of them (the last) are held out
        (``"pair"``), and the dose of each member.
    held_out_combination
        ``(cell_line, drug)`` held out at every dose (``"combination"``); default: the last
        line with the last measured drug.
    iid_fraction
        Fraction of the remaining cells, controls included, held out at random (``"iid"``).
    seed, draw
        The world's seed (each draws an independent world; its parameters do not depend on
        ``n_cells_per_condition``), and which draw of its cells: another ``draw`` gives new
        cells of the same world (a second real sample, e.g. a larger held-out set).

    Returns
    -------
    AnnData
        - ``X``: log1p of counts per 10k, float32 CSR; ``layers["counts"]``: raw counts.
        - ``obs``: ``cell_line``, ``drug`` (``"control"``, ``"drug_03"``, ``"drug_01+drug_05"``),
          ``dose`` (a string: ``"0"``, ``"100"``, ``"1000+1000"``), ``dose_value`` (a pair's
          is the sum), ``n_counts``, ``holdout`` (``""``, ``"iid"``, ``"dose"``,
          ``"combination"``, ``"pair"``, ``"unseen_drug"``: each outranks those before it)
          and ``split`` (``"train"``/``"test"``).
        - ``var``: ``pathway`` (comma-joined, or ``""``), ``interaction``, ``marker_of``.
        - ``uns["screen"]``: the truth (JSON-able), for :func:`screen_true_mean`;
          ``uns["drug_features"]``, for :func:`screen_features`.

    Examples
    --------
    >>> from scdiff.datasets import screen_features, simulate_screen
    >>> adata = simulate_screen(n_cells_per_condition=5, seed=0)
    >>> adata.shape
    (885, 400)
    >>> sorted(adata.obs["holdout"].unique()), screen_features(adata).shape
    (['', 'combination', 'dose', 'iid', 'pair', 'unseen_drug'], (12, 9))
    """
    doses = [float(d) for d in doses]
    lines = [f"line_{i}" for i in range(n_cell_lines)]
    _check_sizes(n_cells_per_condition, n_genes, n_cell_lines, n_drugs, n_unseen, n_pathways, n_distractors)
    _check_design(n_drugs, doses, held_out_dose, n_pairs, n_held_out_pairs, pair_dose, iid_fraction)
    width = max(2, len(str(n_drugs + n_unseen - 1)))  # names sort as their numbers do
    drugs = [f"drug_{i:0{width}d}" for i in range(n_drugs + n_unseen)]
    combination = _check_combination(held_out_combination, lines, drugs[:n_drugs])
    param_seq, cell_seq = np.random.SeedSequence(seed).spawn(2)
    cell_seq = np.random.SeedSequence([seed, _whole(draw, "draw")]) if draw else cell_seq
    truth, var = _draw_world(np.random.default_rng(param_seq), n_genes=n_genes, lines=lines, drugs=drugs,
                             n_drugs=n_drugs, n_pathways=n_pathways, n_distractors=n_distractors,
                             n_pairs=n_pairs)
    truth.update(
        seed=int(seed), doses=doses, held_out_dose=float(held_out_dose), pair_dose=float(pair_dose),
        held_out_pairs=truth["pairs"][len(truth["pairs"]) - n_held_out_pairs:],
        held_out_combination=list(combination), iid_fraction=float(iid_fraction),
        n_cells_per_condition=int(n_cells_per_condition),
    )
    conditions = _conditions(lines, truth["drugs"], doses, truth["pairs"], float(pair_dose))
    rates = np.exp(np.stack([_log_rate(truth, *c[:3]) for c in conditions]))
    rng = np.random.default_rng(cell_seq)
    group_of = rng.permutation(np.repeat(np.arange(len(conditions)), n_cells_per_condition))
    counts, x = draw_cells(rng, truth, rates, group_of)
    obs = _obs(rng, conditions, group_of, counts, truth)
    return AnnData(X=x, obs=obs, var=var, layers={"counts": counts},
                   uns={"screen": truth, "drug_features": _features(truth)})


def screen_features(adata: AnnData) -> pd.DataFrame:
    """The drug features of a simulated screen, unseen drugs included.

    Parameters
    ----------
    adata
        An AnnData made by :func:`simulate_screen` (its ``uns["drug_features"]``).

    Returns
    -------
    One row per drug (index ``drug``): ``target_0``, ... (strength on each pathway),
    ``log10_ec50`` and ``descriptor_0``, ... (no effect).

    Examples
    --------
    >>> from scdiff.datasets import screen_features, simulate_screen
    >>> features = screen_features(simulate_screen(n_cells_per_condition=2, seed=0))
    >>> list(features.columns[:2]), features.index[0]
    (['target_0', 'target_1'], 'drug_00')
    """
    table = _uns(adata, "drug_features")
    return pd.DataFrame(np.asarray(table["data"], dtype=float),
                        index=pd.Index([str(d) for d in table["index"]], name="drug"),
                        columns=[str(c) for c in table["columns"]])


def screen_true_mean(adata: AnnData, *, cell_line: str, drug: str, dose: float | str,
                     scale: TruthScale = "log1p", n_samples: int = 5000, seed: int = 0,
                     interaction: bool = True) -> np.ndarray:
    """Expected expression profile of one condition of a simulated screen (the ground truth).

    Defined for any drug (unseen ones included), any pair and any dose, so predictions of
    held-out conditions can be scored against the truth.

    Parameters
    ----------
    adata
        An AnnData made by :func:`simulate_screen` (it reads ``uns["screen"]``).
    cell_line, drug
        The condition: ``"control"``, a drug (``"drug_03"``) or a pair (``"drug_01+drug_05"``).
    dose
        The dose (``100.0`` or ``"100"``); for a pair one per member, ``"1000+1000"``. The
        control ignores it.
    scale, n_samples, seed
        As in :func:`scdiff.datasets.true_mean`: ``"log1p"`` is the expected ``.X`` (Monte
        Carlo over ``n_samples`` cells); ``"rate"``, exact, is ``exp(baseline + effects)``.
    interaction
        ``False``: a pair's members' effects only add up (what a predictor can know that has
        learned each drug alone, not how a pair never measured interacts).

    Returns
    -------
    Array of shape ``(n_genes,)``, float64, ordered as ``adata.var_names``.

    Examples
    --------
    >>> from scdiff.datasets import screen_true_mean, simulate_screen
    >>> adata = simulate_screen(n_cells_per_condition=2, seed=0)
    >>> pair = adata.uns["screen"]["pairs"][0]
    >>> screen_true_mean(adata, cell_line="line_0", drug=pair, dose="1000+1000").shape
    (400,)
    """
    truth = _uns(adata, "screen")
    eta = _log_rate(truth, str(cell_line), str(drug), dose, interaction=interaction)
    # A world of one condition whose baseline is this log rate: true_mean's scales, unchanged.
    one = {"cell_types": ["_"], "drugs": [CONTROL], "control": CONTROL, "base_log_mean": [eta],
           "dispersion": truth["dispersion"], "library_log_sd": truth["library_log_sd"]}
    return true_mean(one, cell_type="_", drug=CONTROL, dose=0.0, scale=scale, n_samples=n_samples,
                     seed=seed)


def _uns(adata: AnnData, key: str):
    if key not in adata.uns:
        raise InputError(f"adata.uns[{key!r}] not found: pass an AnnData made by simulate_screen.")
    return adata.uns[key]


def _log_rate(truth, cell_line: str, drug: str, dose, *, interaction: bool = True) -> np.ndarray:
    """Natural log of the expected counts of a size-factor-1 cell in one condition."""
    lines, drugs = ([str(v) for v in np.atleast_1d(truth[key])] for key in ("cell_lines", "drugs"))
    if cell_line not in lines:
        raise InputError(f"cell_line = {cell_line!r} needs to be one of {lines}.")
    eta = np.asarray(truth["base_log_mean"], dtype=float)[lines.index(cell_line)].copy()
    if drug == CONTROL:
        return eta
    members = drug.split("+")
    if len(members) > 2 or len(set(members)) < len(members) or not set(members) <= set(drugs):
        raise InputError(f"drug = {drug!r} needs to be {CONTROL!r}, one of {drugs[0]}..{drugs[-1]}, "
                         "or two different ones joined by '+'.")
    try:
        member_doses = _member_doses(dose, len(members))
    except InputError:
        member_doses = [-1.0]  # refused below
    if min(member_doses) < 0:
        raise InputError(f"dose = {dose!r} needs to be one dose >= 0 per member, as '1000+1000'.")
    idx = [drugs.index(m) for m in members]
    targets = np.asarray(truth["targets"], dtype=float)[idx]
    sensitivity = np.asarray(truth["sensitivity"], dtype=float)[lines.index(cell_line)]
    ec50, hill = 10.0 ** np.asarray(truth["log10_ec50"], dtype=float), np.asarray(truth["hill"], dtype=float)
    frac = [hill_curve(d, ec50=ec50[i], hill=hill[i]) for i, d in zip(idx, member_doses, strict=True)]
    per_pathway = (np.asarray(frac)[:, None] * targets * sensitivity).sum(axis=0)
    eta += per_pathway @ np.asarray(truth["loadings"], dtype=float)
    if len(members) == 2 and interaction:
        strength = float(truth["kappa"]) * frac[0] * frac[1] * (
            targets[0] @ np.asarray(truth["interaction_matrix"], dtype=float) @ targets[1])
        eta += strength * np.asarray(truth["interaction_loadings"], dtype=float)
    return eta


def _draw_world(rng: np.random.Generator, *, n_genes: int, lines: list[str], drugs: list[str],
                n_drugs: int, n_pathways: int, n_distractors: int, n_pairs: int
                ) -> tuple[dict[str, Any], pd.DataFrame]:
    """The truth (JSON-able) and the genes' annotations of one world."""
    library_size = COUNTS_PER_GENE * n_genes
    order, base, markers, marker_of = _baseline(rng, n_genes, lines, N_MARKERS, library_size)
    # Programmes move expressed genes, so that down-regulation shows, and never a marker.
    pool = rng.permutation(np.setdiff1d(order[int(0.3 * n_genes):], markers))
    sizes = [*rng.integers(PATHWAY_GENES[0], PATHWAY_GENES[1] + 1, size=n_pathways),
             rng.integers(INTERACTION_GENES[0], INTERACTION_GENES[1] + 1)]
    loadings = np.zeros((n_pathways + 1, n_genes))  # the last row is the interaction's
    for k, (start, size) in enumerate(zip(np.cumsum([0, *sizes[:-1]]), sizes, strict=True)):
        # Consecutive slices of the shuffled pool, wrapping round: disjoint while it lasts.
        genes = pool[np.arange(start, start + size) % pool.size]
        sign = np.where(rng.random(size) < 0.6, 1.0, -1.0)
        loadings[k, genes] = sign * EFFECT * rng.uniform(0.5, 1.0, size)
    pathways = [f"pathway_{p}" for p in range(n_pathways)]
    w = rng.uniform(-1.0, 1.0, size=(n_pathways, n_pathways))
    pairs = list(itertools.combinations(drugs[:n_drugs], 2))  # sorted by name, as drugs are
    truth = {
        "kind": "screen", "cell_lines": lines, "drugs": drugs, "measured": drugs[:n_drugs],
        "unseen": drugs[n_drugs:], "pathways": pathways, "control": CONTROL,
        "library_size": library_size, "library_log_sd": LIBRARY_LOG_SD,
        "base_log_mean": base.tolist(), "loadings": loadings[:-1].tolist(),
        "interaction_loadings": loadings[-1].tolist(),
        "sensitivity": rng.uniform(0.4, 1.6, size=(len(lines), n_pathways)).tolist(),
        "targets": _draw_targets(rng, n_drugs, len(drugs) - n_drugs, n_pathways).tolist(),
        "log10_ec50": rng.uniform(np.log10(30.0), np.log10(3000.0), size=len(drugs)).tolist(),
        "hill": rng.uniform(1.0, 2.5, size=len(drugs)).tolist(),
        "descriptors": rng.standard_normal((len(drugs), n_distractors)).tolist(),
        "interaction_matrix": (np.triu(w) + np.triu(w, 1).T).tolist(), "kappa": KAPPA,
        "dispersion": np.exp(rng.normal(np.log(3.0), 0.5, size=n_genes)).tolist(),
        "pairs": ["+".join(pairs[i]) for i in rng.choice(len(pairs), size=n_pairs, replace=False)],
    }
    names = gene_names(n_genes)
    truth["pathway_genes"] = {p: names[loadings[k] != 0].tolist() for k, p in enumerate(pathways)}
    truth["interaction_genes"] = names[loadings[-1] != 0].tolist()
    pathway_of = [",".join(p for k, p in enumerate(pathways) if loadings[k, g] != 0) for g in range(n_genes)]
    var = pd.DataFrame({"pathway": pathway_of, "interaction": loadings[-1] != 0,
                        "marker_of": marker_of.astype(str)}, index=names)
    return truth, var


def _draw_targets(rng: np.random.Generator, n_drugs: int, n_unseen: int, n_pathways: int) -> np.ndarray:
    """Drug x pathway strengths: 1-2 targets a drug, every pathway hit by >= 2 measured drugs."""
    hit = np.zeros((n_drugs + n_unseen, n_pathways), dtype=bool)
    # Two measured drugs per pathway, dealt round a shuffled deck: a drug gets at most two
    # (n_pathways <= n_drugs) and they differ; then the drugs are topped up at random.
    deck = rng.permutation(n_drugs)
    for slot in range(2 * n_pathways):
        hit[deck[slot % n_drugs], slot // 2] = True
    for m in range(len(hit)):
        if not hit[m].any():
            hit[m, rng.integers(n_pathways)] = True
        if hit[m].sum() == 1 and n_pathways > 1 and rng.random() < 0.5:
            hit[m, rng.choice(np.flatnonzero(~hit[m]))] = True
    return np.where(hit, rng.uniform(0.6, 1.2, size=hit.shape), 0.0)


def _features(truth: dict[str, Any]) -> dict[str, list]:
    """The features table as JSON-able ``index``/``columns``/``data``."""
    targets = np.asarray(truth["targets"])
    descriptors = np.asarray(truth["descriptors"]).reshape(len(targets), -1)
    columns = ([f"target_{p}" for p in range(targets.shape[1])] + ["log10_ec50"]
               + [f"descriptor_{k}" for k in range(descriptors.shape[1])])
    data = np.column_stack([targets, truth["log10_ec50"], descriptors])
    return {"index": list(truth["drugs"]), "columns": columns, "data": data.tolist()}


def _conditions(lines: list[str], drugs: list[str], doses: list[float], pairs: list[str],
                pair_dose: float) -> list[tuple[str, str, str, float]]:
    """(cell line, drug, dose label, dose value) of every condition of the screen."""
    out = []
    for line in lines:
        out += [(line, CONTROL, "0", 0.0)] + [(line, m, f"{d:g}", d) for m in drugs for d in doses]
        out += [(line, p, f"{pair_dose:g}+{pair_dose:g}", 2.0 * pair_dose) for p in pairs]
    return out


def _obs(rng: np.random.Generator, conditions: list[tuple], group_of: np.ndarray, counts,
         truth: dict[str, Any]) -> pd.DataFrame:
    """Each cell's condition, total counts, and which split (and held-out kind) it is in."""
    cond = pd.DataFrame(conditions, columns=["cell_line", "drug", "dose", "dose_value"]).iloc[group_of]
    obs = pd.DataFrame({
        "cell_line": pd.Categorical(cond["cell_line"], categories=truth["cell_lines"]),
        "drug": pd.Categorical(cond["drug"], categories=[CONTROL, *truth["drugs"], *truth["pairs"]]),
        "dose": pd.Categorical(cond["dose"], categories=list(dict.fromkeys(c[2] for c in conditions))),
        "dose_value": cond["dose_value"].to_numpy(dtype=float),
        "n_counts": np.asarray(counts.sum(axis=1)).ravel().astype(np.float32),
    }, index=pd.Index([f"cell_{i:05d}" for i in range(len(group_of))]))
    obs["holdout"] = pd.Categorical(_holdout(rng, obs, truth), categories=HOLDOUT_KINDS)
    obs["split"] = pd.Categorical(np.where(obs["holdout"] == "", "train", "test"),
                                  categories=["train", "test"])
    return obs


def _holdout(rng: np.random.Generator, obs: pd.DataFrame, truth: dict[str, Any]) -> np.ndarray:
    """Hold-out kind of each cell; later kinds outrank earlier ones, and all outrank iid."""
    drug, line = obs["drug"].astype(str).to_numpy(), obs["cell_line"].astype(str).to_numpy()
    kind = np.full(len(obs), "", dtype=object)
    single = np.isin(drug, truth["measured"])
    kind[single & (obs["dose_value"].to_numpy() == truth["held_out_dose"])] = "dose"
    held_line, held_drug = truth["held_out_combination"]
    kind[(line == held_line) & (drug == held_drug)] = "combination"
    kind[np.isin(drug, truth["held_out_pairs"])] = "pair"
    kind[np.isin(drug, truth["unseen"])] = "unseen_drug"
    rest = np.flatnonzero(kind == "")
    kind[rng.choice(rest, size=int(round(truth["iid_fraction"] * rest.size)), replace=False)] = "iid"
    return kind


def _whole(value, name: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
        raise InputError(f"{name} = {value!r} needs to be a whole number >= 0.")
    return int(value)


def _check_combination(held_out_combination, lines: list[str], measured: list[str]) -> tuple[str, str]:
    combination = tuple(str(v) for v in held_out_combination or (lines[-1], measured[-1]))
    if len(combination) != 2 or combination[0] not in lines or combination[1] not in measured:
        raise InputError(f"held_out_combination = {held_out_combination!r} needs to be (cell line, drug) "
                         f"with a line in {lines} and a measured drug, {measured[0]}..{measured[-1]}.")
    return combination


def _check_sizes(n_cells_per_condition, n_genes, n_cell_lines, n_drugs, n_unseen, n_pathways,
                 n_distractors) -> None:
    if min(n_cells_per_condition, n_genes, n_cell_lines, n_pathways) < 1 or min(n_unseen, n_distractors) < 0:
        raise InputError("n_cells_per_condition, n_genes, n_cell_lines and n_pathways need to be >= 1, "
                         "n_unseen and n_distractors >= 0.")
    if n_drugs < max(2, n_pathways):
        raise InputError(f"n_drugs = {n_drugs} is too few: each of n_pathways = {n_pathways} needs two "
                         f"measured drugs, a drug targets two at most; use n_drugs >= {max(2, n_pathways)}.")
    if n_unseen >= n_drugs:
        raise InputError(f"n_unseen = {n_unseen} needs to be < n_drugs = {n_drugs} (the measured drugs); "
                         "lower n_unseen or raise n_drugs.")
    # The expressed 70% of genes need to hold every marker and one pathway beside them.
    minimum = -(-10 * (PATHWAY_GENES[1] + n_cell_lines * N_MARKERS) // 7)
    if n_genes < minimum:
        raise InputError(f"n_genes = {n_genes} is too small for {n_cell_lines} lines x {N_MARKERS} markers "
                         f"and pathways of up to {PATHWAY_GENES[1]} genes: use n_genes >= {minimum}.")


def _check_design(n_drugs, doses, held_out_dose, n_pairs, n_held_out_pairs, pair_dose, iid_fraction
                  ) -> None:
    if not doses or min(doses) <= 0 or len({f"{d:g}" for d in doses}) != len(doses):
        raise InputError(f"doses = {doses} needs distinct positive values; the control gets dose 0.")
    if float(held_out_dose) not in doses:
        raise InputError(f"held_out_dose = {held_out_dose} needs to be one of doses = {doses}.")
    if not pair_dose > 0:
        raise InputError(f"pair_dose = {pair_dose} needs to be > 0.")
    possible = n_drugs * (n_drugs - 1) // 2
    if not 0 <= n_pairs <= possible:
        raise InputError(f"n_pairs = {n_pairs} needs to be in [0, {possible}], the pairs of "
                         f"n_drugs = {n_drugs} measured drugs; lower n_pairs or raise n_drugs.")
    if not 0 <= n_held_out_pairs <= n_pairs:
        raise InputError(f"n_held_out_pairs = {n_held_out_pairs} needs to be in [0, n_pairs = {n_pairs}].")
    if not 0.0 <= iid_fraction < 1.0:
        raise InputError(f"iid_fraction = {iid_fraction} needs to be in [0, 1).")
