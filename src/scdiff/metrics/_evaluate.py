"""``evaluate``: score generated cells against real ones, beside a real-vs-real floor."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from anndata import AnnData

from scdiff._errors import InputError, ScdiffWarning, arg
from scdiff.data import (
    align_genes,
    condition_keys,
    group_labels,
    group_order,
    select_rows,
    sketch_overlap,
    subsample,
)
from scdiff.data._cells import expressed_genes
from scdiff.metrics._classifiers import fit_label_classifier, knn_auc, label_accuracy
from scdiff.metrics._distances import PairDistances, wasserstein_pcs
from scdiff.metrics._markers import marker_metrics, marker_scores
from scdiff.metrics._memorisation import COPY_FLAG_MARGIN, membership_auc, memorisation, nearest_distance
from scdiff.metrics._moments import gene_corr_matrix, gene_stats, moment_metrics, top_variable
from scdiff.metrics._pca import PCA, fit_pca
from scdiff.metrics._plan import MIN_CELLS, Plan, group_rng, make_plan
from scdiff.metrics._table import COLUMNS, METRICS, OVERALL, row, weighted_overall


@dataclass
class _Sample:
    """Cells of one origin: expression rows, group label per row, PCA coordinates."""

    X: object
    labels: np.ndarray
    z: np.ndarray

    @classmethod
    def build(cls, adata: AnnData, plan: Plan, part: str, pca: PCA | None = None) -> _Sample:
        idx, labels = plan.indices(part)
        X = select_rows(adata.X, idx)
        return cls(X, labels, pca.transform(X) if pca is not None else np.zeros((len(idx), 0)))

    def mask(self, group: str) -> np.ndarray:
        return self.labels == group


def evaluate(
    real: AnnData,
    generated: AnnData,
    *,
    condition: str | Sequence[str] | None = None,
    train: AnnData | None = None,
    n_pcs: int = 30,
    max_cells: int = 20000,
    k_markers: int = 20,
    seed: int = 0,
    key_added: str | None = None,
) -> pd.DataFrame:
    """Score generated cells against real cells, each score beside its real-vs-real floor.

    Parameters
    ----------
    real
        Held-out real cells; ``.X`` is log-normalized expression (log1p CP10k).
    generated
        Generated cells with the same genes (any order) in the same scale.
    condition
        ``.obs`` column (or list of columns) defining the groups compared; with
        a list, a group is the columns' values joined with ``" | "``. None
        compares all cells as one group, ``"all"``.
    train
        Training cells of the model, if available: then the floor compares
        ``train`` with ``real`` and memorisation is checked. Otherwise the
        floor compares two halves of ``real`` (see Notes).
    n_pcs
        Principal components of the PCA fitted on the reference real cells.
    max_cells
        Per-group cap: larger groups are subsampled (seeded). The cap is
        recorded in ``table.attrs["scdiff"]``.
    k_markers
        Number of top marker genes per group compared.
    seed
        Seeds every subsample, split and classifier; the table is
        deterministic given it.
    key_added
        If given, store the table (a dict of columns) and the parameters in
        ``generated.uns[key_added]``.

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``group``, ``metric``, ``value``, ``floor``,
        ``ratio``, ``n_real``, ``n_generated``, ``better``, ``flagged``. The
        ``"overall"`` group is the mean over groups weighted by real cell
        counts, except for ``label_accuracy``, ``nn_distance_ratio``,
        ``copy_fraction`` and ``membership_auc``, computed on all cells together. ``ratio`` is
        ``|value - ideal| / max(|floor - ideal|, tol)`` with each metric's ideal
        and tol in :data:`scdiff.metrics.METRICS`: 1 is as good as real data,
        NaN for the memorisation metrics. ``flagged`` marks the memorisation
        rows when more than 5% of generated cells look like training copies.

    Notes
    -----
    The floor is the same metric between the reference real cells and a
    second, disjoint sample of real cells of the same size as the generated
    sample: the training cells when ``train`` is given, else the other half
    of the real cells (the generated cells are then compared with one half,
    subsampled to the other half's size). MMD (sum of RBF kernels at 0.5, 1
    and 2 times the median distance between reference cells) and energy
    distance are biased V-statistics, >= 0 and exactly 0 for identical sets.
    Groups with fewer than 5 cells in a sample are skipped with a warning.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def cells(n):
    ...     a = ad.AnnData(np.log1p(rng.poisson(2.0, (n, 20))).astype("float32"))
    ...     a.obs["cell_type"] = pd.Categorical(np.repeat(["A", "B"], n // 2))
    ...     return a
    >>> table = evaluate(cells(100), cells(100), condition="cell_type", n_pcs=5)
    >>> sorted(table["group"].unique())
    ['A', 'B', 'overall']
    """
    keys = condition_keys(condition)
    _check_options(n_pcs, max_cells, k_markers, seed)
    gen_ad = align_genes(real, generated, "generated")
    train_ad = align_genes(real, train, "train") if train is not None else None
    _warn_if_trained_on(real, generated, train)
    plan = _plan(real, gen_ad, train_ad, keys, max_cells=max_cells, seed=seed)

    ref_idx, _ = plan.indices("ref")
    fit_rows = subsample(ref_idx, max_cells, np.random.default_rng(seed))
    pca = fit_pca(select_rows(real.X, fit_rows), n_pcs=n_pcs, seed=seed)
    ref = _Sample.build(real, plan, "ref", pca)
    gen = _Sample.build(gen_ad, plan, "gen", pca)
    other = _Sample.build(train_ad if train_ad is not None else real, plan, "other", pca)
    weights = {g: float(p.n_real) for g, p in plan.groups.items()}

    table = _group_rows(plan, ref, gen, other, k_markers, seed)
    table += weighted_overall(table, weights)
    train_s = _Sample.build(train_ad, plan, "train", pca) if train_ad is not None else None
    if keys and len(plan.groups) >= 2:
        fit, held_out = (train_s, ref) if train_s is not None else (ref, other)
        table += _label_rows(plan, fit, held_out, gen, seed)
    if train_s is not None:
        # A PCA fitted on the training cells: the real held-out and generated cells are then
        # both out of its sample (a PCA fitted on the held-out cells inflates their distances).
        fit_train = subsample(np.arange(len(train_s.labels)), max_cells, np.random.default_rng(seed))
        pca_train = fit_pca(train_s.X[fit_train], n_pcs=n_pcs, seed=seed)
        table += _memorisation_rows(plan, *(pca_train.transform(s.X) for s in (train_s, ref, gen)),
                                    ref.labels, gen.labels, seed)
        table += _membership_rows(train_s.X, ref.X, gen.X, n_pcs=n_pcs, seed=seed, max_cells=max_cells)

    df = _tidy(table, list(plan.groups))
    params = {
        "condition": keys, "n_pcs": pca.n_pcs, "max_cells": max_cells, "k_markers": k_markers,
        "seed": seed, "floor": "train vs real" if train is not None else "real half vs real half",
        "capped_groups": plan.capped, "skipped_groups": plan.skipped,
        "pca_cells": len(fit_rows),
    }
    df.attrs["scdiff"] = params
    if key_added is not None:
        generated.uns[key_added] = {
            "table": {c: df[c].to_numpy() for c in df.columns},
            "params": {k: v for k, v in params.items() if v is not None and v != []},
        }
    return df


def _plan(real: AnnData, generated: AnnData, train: AnnData | None, keys: list[str], *,
          max_cells: int, seed: int) -> Plan:
    """The cells each comparison uses (:func:`make_plan`); warns of skipped groups."""
    lab_real = group_labels(real, keys, "real")
    lab_gen = group_labels(generated, keys, "generated")
    lab_train = group_labels(train, keys, "train") if train is not None else None
    groups = group_order(real, keys, lab_real)
    groups += sorted(set(lab_gen.tolist()) - set(groups))
    plan = make_plan(groups, lab_real, lab_gen, lab_train, max_cells=max_cells, seed=seed)
    if plan.skipped:
        halves = "" if train is not None else (
            f" (without train the real cells are split in halves, so a group needs "
            f"{2 * MIN_CELLS} real cells)")
        warnings.warn(f"skipped groups with fewer than {MIN_CELLS} cells in a sample{halves}: "
                      f"{'; '.join(plan.skipped)}", UserWarning, stacklevel=3)
    if not plan.groups:
        raise InputError(f"no group has at least {MIN_CELLS} real and {MIN_CELLS} generated cells"
                         f"{'' if train is not None else f' ({2 * MIN_CELLS} real without train)'}"
                         f"; check that condition values match between real and generated")
    return plan


def _warn_if_trained_on(real: AnnData, generated: AnnData, train: AnnData | None) -> None:
    """Say so when the "real" cells are cells the model was trained on: against its own
    training cells a model scores like a second real sample, or better."""
    if train is not None:
        shared = float(real.obs_names.isin(train.obs_names).mean())
        if shared > 0.1:
            warnings.warn(ScdiffWarning(f"{shared:.0%} of the real cells are also in {arg('train')}: "
                                        "the floor then compares cells with themselves; give "
                                        "held-out real cells"), stacklevel=3)
        return
    sketch = (generated.uns.get("scdiff") or {}).get("training_cells") if "scdiff" in generated.uns \
        else None
    share = sketch_overlap(sketch, real.obs_names, expressed_genes(real.X)) if sketch else None
    if share is not None and share > 0.5:
        warnings.warn(ScdiffWarning(f"about {share:.0%} of the real cells are cells the model was "
                                    "trained on: against its own training cells a model scores like "
                                    "a second real sample, or better; evaluate against held-out "
                                    f"cells, and give the training cells as {arg('train')} for the "
                                    "floor"), stacklevel=3)


def _check_options(n_pcs: int, max_cells: int, k_markers: int, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"{arg('seed', seed)} needs to be a whole number >= 0.")
    if int(n_pcs) < 2:
        raise InputError(f"n_pcs must be at least 2, got {n_pcs}")
    if int(max_cells) < 2 * MIN_CELLS:
        raise InputError(f"max_cells must be at least {2 * MIN_CELLS}, got {max_cells}")
    if int(k_markers) < 1:
        raise InputError(f"k_markers must be at least 1, got {k_markers}")


def _group_rows(plan: Plan, ref: _Sample, gen: _Sample, other: _Sample, k_markers: int,
                seed: int) -> list[dict]:
    """Per-group distribution, moment, discriminability and marker rows (value and floor)."""
    stats = {name: {g: gene_stats(s.X[s.mask(g)]) for g in plan.groups}
             for name, s in (("ref", ref), ("gen", gen), ("other", other))}
    markers = ({name: marker_scores(st) for name, st in stats.items()}
               if len(plan.groups) >= 2 else None)
    out = []
    for g in plan.groups:
        z_ref = ref.z[ref.mask(g)]
        dist = PairDistances(z_ref, seed=seed)
        hvg = top_variable(stats["ref"][g])
        corr_ref = gene_corr_matrix(ref.X[ref.mask(g)], hvg)
        scores = {}
        for name, s in (("gen", gen), ("other", other)):
            m = s.mask(g)
            sc = dist(s.z[m])
            sc["wasserstein_pc"] = wasserstein_pcs(z_ref, s.z[m])
            sc.update(moment_metrics(stats["ref"][g], stats[name][g], corr_ref,
                                     gene_corr_matrix(s.X[m], hvg)))
            sc["knn_auc"] = knn_auc(z_ref, s.z[m], seed=int(group_rng(seed, g, 1).integers(2**31)))
            if markers is not None:
                sc.update(marker_metrics(markers["ref"][g], markers[name][g], k_markers))
            scores[name] = sc
        n_ref, n_gen = int(ref.mask(g).sum()), int(gen.mask(g).sum())
        out += [row(g, metric, scores["gen"][metric], scores["other"][metric], n_ref, n_gen)
                for metric in scores["gen"]]
    return out


def _label_rows(plan: Plan, fit: _Sample, held_out: _Sample, gen: _Sample, seed: int
                ) -> list[dict]:
    """Label fidelity: accuracy on generated cells beside accuracy on real held-out cells."""
    clf = fit_label_classifier(fit.z, fit.labels.astype(str), seed=seed)
    groups = list(plan.groups)
    acc_gen = label_accuracy(clf, gen.z, gen.labels.astype(str), groups)
    acc_real = label_accuracy(clf, held_out.z, held_out.labels.astype(str), groups)
    out = []
    for g in [*groups, OVERALL]:
        n_real = len(held_out.labels) if g == OVERALL else int(held_out.mask(g).sum())
        n_gen = len(gen.labels) if g == OVERALL else int(gen.mask(g).sum())
        out.append(row(g, "label_accuracy", acc_gen.get(g, np.nan), acc_real.get(g, np.nan),
                       n_real, n_gen))
    return out


def _split(n_ref: int, n_train: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real half A, real half B, a subsample of the training cells as large as B)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_ref)
    a, b = perm[: n_ref // 2], perm[n_ref // 2:]
    return a, b, rng.choice(n_train, size=min(len(b), n_train), replace=False)


def _membership_rows(X_train, X_ref, X_gen, *, n_pcs: int, seed: int, max_cells: int) -> list[dict]:
    """A membership-inference attack on the generated cells, beside the same attack on real
    cells: the training subsample and the real half B of :func:`_split` (members and
    non-members, equally many), each scored by its distance to the nearest "released" cell,
    the generated cells or (the floor) the real half A, on principal axes fitted on the
    released cells alone, as an attacker holding only them would fit them (members and
    non-members are then both out of the axes' sample)."""
    a, b, t = _split(X_ref.shape[0], X_train.shape[0], seed)
    aucs = []
    for released in (X_gen, select_rows(X_ref, a)):
        fit_rows = subsample(np.arange(released.shape[0]), max_cells, np.random.default_rng(seed))
        pca = fit_pca(select_rows(released, fit_rows), n_pcs=n_pcs, seed=seed)
        z = pca.transform(released)
        aucs.append(membership_auc(nearest_distance(pca.transform(select_rows(X_train, t)), z),
                                   nearest_distance(pca.transform(select_rows(X_ref, b)), z)))
    return [row(OVERALL, "membership_auc", aucs[0], aucs[1], len(b), X_gen.shape[0])]


def _memorisation_rows(plan: Plan, z_train: np.ndarray, z_ref: np.ndarray, z_gen: np.ndarray,
                       lab_ref: np.ndarray, lab_gen: np.ndarray, seed: int) -> list[dict]:
    """Generated cells' distance to training cells against held-out real cells; flags copies.

    The real cells are split in halves A and B; B and an equally large random subsample
    of the training cells are the two reference sets (equal sizes matter: a smoothed
    generated cell gains more from a larger reference set than a noisy real one).
    Generated cells are scored against them, and the floor is the same score of the
    real half A, which copies nothing. A generator that copies every training cell
    shows a copy_fraction of about |B| / |train| (its sources must be in the subsample).
    """
    a, b, t = _split(len(z_ref), len(z_train), seed)
    ref_train, ref_held = z_train[t], z_ref[b]
    gen_d = (nearest_distance(z_gen, ref_train), nearest_distance(z_gen, ref_held))
    real_d = (nearest_distance(z_ref[a], ref_train), nearest_distance(z_ref[a], ref_held))
    lab_a = lab_ref[a]
    out = []
    for g in [*plan.groups, OVERALL]:
        mg = np.ones(len(z_gen), bool) if g == OVERALL else lab_gen == g
        mr = np.ones(len(a), bool) if g == OVERALL else lab_a == g
        if mg.sum() == 0 or mr.sum() == 0:
            continue
        value = memorisation(gen_d[0][mg], gen_d[1][mg])
        floor = memorisation(real_d[0][mr], real_d[1][mr])
        copied = value["copy_fraction"] > floor["copy_fraction"] + COPY_FLAG_MARGIN
        for metric in ("nn_distance_ratio", "copy_fraction"):
            out.append(row(g, metric, value[metric], floor[metric], int(mr.sum()), int(mg.sum()),
                           flagged=copied))
    overall = [r for r in out if r["group"] == OVERALL and r["metric"] == "copy_fraction"]
    if overall and overall[0]["flagged"]:
        warnings.warn(f"{overall[0]['value']:.0%} of generated cells sit much closer to a training "
                      f"cell than to any held-out real cell (real cells: "
                      f"{overall[0]['floor']:.0%}): the model may be copying its training data",
                      UserWarning, stacklevel=3)
    return out


def _tidy(table: list[dict], groups: list[str]) -> pd.DataFrame:
    """Rows ordered by group (overall last) then by metric, in the documented column order."""
    df = pd.DataFrame(table, columns=COLUMNS)
    g_order = {g: i for i, g in enumerate([*groups, OVERALL])}
    m_order = {m: i for i, m in enumerate(METRICS)}
    df = df.sort_values(["group", "metric"], key=lambda s: s.map(g_order if s.name == "group"
                                                                  else m_order), kind="stable")
    return df.reset_index(drop=True)
