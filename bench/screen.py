"""Issue 20's benchmark: perturbations nobody measured, on independently drawn drug screens.

Each world is :func:`scdiff.datasets.simulate_screen` with its own seed (every parameter
and cell drawn anew): 3 cell lines, 10 measured drugs described by features (the pathways
they target, their potency, descriptors that do nothing), 2 more drugs known only by their
features, 4 doses, 10 drug pairs of which 3 are held out; 30 training cells per condition.
The real held-out cells are a second draw of the same world, ``n_test`` (150) per
condition, so that their means are precise enough to score against. Held out of training: one dose
of every measured drug (``dose``), one line x drug combination at every dose
(``combination``), the two unseen drugs at every dose (``unseen_drug``) and three pairs
(``pair``). Each world is trained with two training seeds, with scdiff's defaults and the
drug features (``condition_features``), and sampled with defaults (no guidance tuning):
``n_generated`` cells per held-out condition.

Every held-out condition is scored by :func:`scdiff.perturb.evaluate_perturbation` (R2 and
Pearson of the change from control on the top-20 DE genes, the same from the mean
perturbed state (Systema), top-50 DE overlap and direction, energy distance to the real
cells) beside the baselines no change, mean of training perturbations, additive, linear
(ridge on the features) and nearest dose. The targets, per world and on the mean:

- held-out dose: ``r2_delta_top`` >= 0.85;
- combination: >= 0.75 on the mean, >= 0.7 in every world, above additive in every world;
- unseen drug: >= 0.6 and above every baseline;
- pairs: >= 0.7 and above additive;
- energy distance below every baseline's on every held-out group type.

Run from the repository root (one torch job at a time)::

    .venv/bin/python -m bench.screen --worlds 0,1,2 --seeds 0,1          # ~25 min on 2 cores
    .venv/bin/python -m bench.screen --worlds 0 --seeds 0 --network '{"feature_noise": 0}' --tag _nonoise
    .venv/bin/python -m bench.screen --worlds 0,1,2 --seeds 0 --mean-only   # the mean model alone, ~1 min
    .venv/bin/python -m bench.screen --summarise _s28                     # the saved results

Writes ``bench/results/screen<tag>.csv`` (one row per world, seed, held-out condition and
method) and prints the per-group means.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

import scdiff
from scdiff.datasets import screen_features, screen_true_mean, simulate_screen
from scdiff.model._space import network_cells
from scdiff.model._train import fit_condition_means
from scdiff.perturb import Design, evaluate_perturbation
from scdiff.train._mean import MEAN_STEPS

RESULTS = Path(__file__).resolve().parent / "results"
DESIGN = Design(covariates=("cell_line",), perturbation="drug", dose="dose", control="control")
GROUPS = ("dose", "combination", "unseen_drug", "pair")
SHOWN = ("r2_delta_top", "pearson_delta_top", "r2_delta_systema", "de_overlap", "de_direction", "energy")


def held_out(test, n_generated: int) -> pd.DataFrame:
    """The conditions to generate: every held-out condition, ``n_generated`` cells each."""
    conditions = test.obs[["cell_line", "drug", "dose"]].astype(str).drop_duplicates()
    return conditions.loc[conditions.index.repeat(n_generated)].reset_index(drop=True)


def run_world(world: int, seeds: list[int], *, model_kw: dict, train_kw: dict, sample_kw: dict,
              n_generated: int, n_test: int, features: bool, network_kw: dict,
              keep: Path | None = None, mean_only: bool = False) -> pd.DataFrame:
    adata = simulate_screen(seed=world)
    table = screen_features(adata)
    train = adata[adata.obs["split"] == "train"].copy()
    test = _held_out(simulate_screen(seed=world, n_cells_per_condition=n_test, draw=1))
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        model = scdiff.ConditionalDiffusion(
            train, condition=["cell_line", "drug"], dose="dose",
            condition_features={"drug": table} if features else None, **model_kw)
        if network_kw:  # a network variant the API does not offer (measured, not kept)
            model.parts.network_config.update(network_kw)
            model.network = model.parts.build_network()
        if mean_only:  # the mean model alone: its fit, not the diffusion
            fit_mean_only(model, seed)
            rows.append(mean_model_scores(model, test, train).assign(world=world, seed=seed))
            print(f"world {world} seed {seed}: mean model fitted in {time.perf_counter() - start:.0f} s")
            continue
        model.train(seed=seed, progress=False, **train_kw)
        trained = time.perf_counter() - start
        if model.network.mean is not None:  # what the mean model predicts, beside the cells
            rows.append(mean_model_scores(model, test, train).assign(world=world, seed=seed))
        like = held_out(test, n_generated)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fake = model.sample(like=like, seed=seed, progress=False, **sample_kw)
        if keep is not None:  # the generated cells, for looking closer (bench/results/...)
            keep.mkdir(parents=True, exist_ok=True)
            fake.write_h5ad(keep / f"world{world}_seed{seed}.h5ad")
        scores = evaluate_perturbation(test, fake, train=train, design=DESIGN,
                                       features={"drug": table}, group="holdout", seed=seed,
                                       baselines=seed == seeds[0])
        scores = scores.assign(world=world, seed=seed, train_s=round(trained, 1))
        rows.append(scores)
        if seed == seeds[0]:  # the ceiling: fresh cells of the world itself, as many as generated
            rows.append(truth_scores(world, test, train, table, n_generated).assign(world=world, seed=seed))
            rows.append(additive_truth_scores(adata, test, train).assign(world=world, seed=seed))
        print(f"world {world} seed {seed}: trained in {trained:.0f} s", flush=True)
        print(summarise(scores).round(3).to_string(), flush=True)
    return pd.concat(rows, ignore_index=True)


def _held_out(adata):
    return adata[adata.obs["holdout"].isin(GROUPS)].copy()


def fit_mean_only(model, seed: int) -> None:
    """The first phase of training alone: the model's mean model fitted to the training
    cells' condition means, by the phase ``model.train`` runs before the diffusion."""
    parts = model.parts
    torch.manual_seed(seed)  # the network drawn as model.train draws it
    model.network = parts.build_network()
    fit_condition_means(model.network, network_cells(parts.space, model._data), steps=MEAN_STEPS,
                        seed=seed, device="cpu", progress=False)


def mean_model_scores(model, test, train) -> pd.DataFrame:
    """The held-out conditions scored on the mean model's predicted means (method
    ``mean_model``; means only: no energy distance)."""
    conditions = _conditions(test)
    codes, doses = model.parts.encoder.encode(conditions, where="the held-out conditions")
    with torch.no_grad():
        z = model.network.mean.eval()(torch.from_numpy(codes), torch.from_numpy(doses)).numpy()
    means = model.parts.preprocessor.inverse(z, zeros=False)  # the mean itself: no zeros drawn
    return _score_means(test, conditions, means, train, "mean_model")


def truth_scores(world: int, test, train, table: pd.DataFrame, n_generated: int) -> pd.DataFrame:
    """The scores of a perfect generator: new cells drawn from the world's own truth."""
    fresh = _held_out(simulate_screen(seed=world, n_cells_per_condition=n_generated, draw=2))
    scores = evaluate_perturbation(test, fresh, train=train, design=DESIGN, features={"drug": table},
                                   group="holdout", baselines=False)
    return scores.assign(method="truth")


def additive_truth_scores(adata, test, train) -> pd.DataFrame:
    """The held-out pairs scored as their members' true effects added up, without the
    pair's interaction (:func:`screen_true_mean` with ``interaction=False``): the ceiling of
    a predictor that knows every drug alone perfectly but cannot know how a pair never
    measured interacts. Its means alone are scored (no cells: no energy distance)."""
    pairs = test[test.obs["holdout"] == "pair"]
    conditions = _conditions(pairs)
    means = np.stack([screen_true_mean(adata, cell_line=c.cell_line, drug=c.drug, dose=c.dose,
                                       interaction=False) for c in conditions.itertuples()])
    return _score_means(pairs, conditions, means, train, "additive_truth")


def _conditions(cells) -> pd.DataFrame:
    """The distinct conditions of ``cells``, one row each, as text."""
    return cells.obs[["cell_line", "drug", "dose"]].astype(str).drop_duplicates().reset_index(drop=True)


def _score_means(real, conditions: pd.DataFrame, means, train, method: str) -> pd.DataFrame:
    """Predicted means, one row per condition, scored against the ``real`` cells (means
    only: no energy distance)."""
    fake = ad.AnnData(np.asarray(means, dtype=np.float32),
                      obs=conditions.set_axis(conditions.index.astype(str)))
    fake.var_names = real.var_names
    scores = evaluate_perturbation(real, fake, train=train, design=DESIGN, group="holdout",
                                   baselines=False, energy=False)
    return scores.assign(method=method)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of each score per held-out group and method (over conditions, seeds, worlds)."""
    shown = [c for c in SHOWN if c in table.columns]
    return table.groupby(["holdout", "method"], sort=True)[shown].mean()


def per_world(table: pd.DataFrame) -> pd.DataFrame:
    """``r2_delta_top`` per held-out group, method and world (mean over seeds and conditions)."""
    return table.pivot_table(index=["holdout", "method"], columns="world", values="r2_delta_top",
                             aggfunc="mean")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", default="0,1,2")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--model", default="{}", help="JSON: ConditionalDiffusion options.")
    parser.add_argument("--network", default="{}", help="JSON: network options beyond the API's "
                        "(e.g. {\"feature_noise\": 0}).")
    parser.add_argument("--train", default="{}", help="JSON: train() options.")
    parser.add_argument("--sample", default="{}", help="JSON: sample() options.")
    parser.add_argument("--n-generated", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=150, help="Real held-out cells per condition.")
    parser.add_argument("--no-features", action="store_true", help="Train without the features.")
    parser.add_argument("--tag", default="")
    parser.add_argument("--mean-only", action="store_true", help="Fit and score the mean model "
                        "alone (seconds a world), not the diffusion.")
    parser.add_argument("--keep", action="store_true", help="Also write the generated cells, "
                        "bench/results/screen<tag>/world<w>_seed<s>.h5ad.")
    parser.add_argument("--summarise", default=None, help="Print a saved result's tables.")
    args = parser.parse_args(argv)
    if args.summarise is not None:
        table = pd.read_csv(RESULTS / f"screen{args.summarise}.csv")
    else:
        torch.set_num_threads(2)
        worlds, seeds = [int(w) for w in args.worlds.split(",")], [int(s) for s in args.seeds.split(",")]
        table = pd.concat([run_world(w, seeds, model_kw=json.loads(args.model),
                                     train_kw=json.loads(args.train), sample_kw=json.loads(args.sample),
                                     n_generated=args.n_generated, n_test=args.n_test,
                                     features=not args.no_features, network_kw=json.loads(args.network),
                                     keep=RESULTS / f"screen{args.tag}" if args.keep else None,
                                     mean_only=args.mean_only)
                           for w in worlds], ignore_index=True)
        RESULTS.mkdir(exist_ok=True)
        table.to_csv(RESULTS / f"screen{args.tag}.csv", index=False)
    with pd.option_context("display.width", 200):
        print(summarise(table).round(3).to_string())
        print(per_world(table).round(3).to_string())
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
