"""Reproduce the perturbation table of docs/perturbation.md.

Trains scdiff on data_examples/simulated_train.h5ad (default length), generates the
held-out doses and drug-cell combinations of simulated_test.h5ad, and scores them
beside the nearest-dose and additive baselines; optionally compares dose encoders
and checks a continuous covariate (pbmc S_score) used as a dose.

    python data_examples/perturbation_benchmark.py --encoders sigmoid            # tables in bench/results/
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

import scdiff
from scdiff.perturb import evaluate_perturbation, summarize
from scdiff.perturb._baselines import _control_moments, _lookup
from scdiff.perturb._groups import Design, group_moments
from scdiff.perturb._metrics import top_de_genes

HERE = Path(__file__).parent
# every CPU, as the recorded figures were measured, whatever the machine's load (bench/__init__.py)
os.environ.setdefault("SCDIFF_THREADS", str(len(os.sched_getaffinity(0))))


def _like(real: ad.AnnData, per_group: int) -> pd.DataFrame:
    """``per_group`` rows of each condition of ``real`` (a less noisy generated mean)."""
    groups = real.obs[["cell_type", "drug", "dose"]].astype({"cell_type": str, "drug": str})
    groups = groups.drop_duplicates()
    return groups.loc[groups.index.repeat(per_group)].reset_index(drop=True)


def simulated(encoder: str, dose_by, seed: int, steps, device: str, per_group: int,
              guidances, schedule: str = "cosine", samplings=(("ddim", 50),),
              space: str = "auto") -> pd.DataFrame:
    train = ad.read_h5ad(HERE / "simulated_train.h5ad")
    test = ad.read_h5ad(HERE / "simulated_test.h5ad")
    model = scdiff.ConditionalDiffusion(train, condition=["cell_type", "drug"], dose="dose",
                                        dose_encoder=encoder, dose_by=dose_by, schedule=schedule,
                                        space=space)
    start = time.perf_counter()
    model.train(steps=steps, seed=seed, device=device, progress=False)
    took = time.perf_counter() - start
    rows = []
    for sampler, n_steps in samplings:
        for guidance in guidances:
            for kind in ("dose", "combination"):
                real = test[test.obs["holdout"] == kind]
                fake = model.sample(like=_like(real, per_group), seed=seed, device=device,
                                    guidance=guidance, sampler=sampler, steps=n_steps)
                table = evaluate_perturbation(real, fake, train=train, baselines=True)
                rows.append(summarize(table).reset_index().assign(
                    holdout=kind, guidance=json.dumps(guidance), sampler=sampler, sample_steps=n_steps))
    out = pd.concat(rows, ignore_index=True)
    return out.assign(encoder=encoder, dose_by=str(dose_by), seed=seed, schedule=schedule,
                      train_s=round(took, 1), steps=model.train_config.steps)


def _params() -> dict:
    return dict(ad.read_h5ad(HERE / "simulated.h5ad", backed="r").uns["simulation"])


def _held_out_combination() -> tuple[ad.AnnData, ad.AnnData, dict, str, str]:
    """(training split, the held-out combination's test cells, the simulator's parameters,
    its cell type, its drug)."""
    train = ad.read_h5ad(HERE / "simulated_train.h5ad")
    test = ad.read_h5ad(HERE / "simulated_test.h5ad")
    real = test[test.obs["holdout"] == "combination"]
    (ct, drug), = real.obs[["cell_type", "drug"]].astype(str).drop_duplicates().itertuples(index=False)
    return train, real, _params(), ct, drug


def _additive_oracle(params: dict, ct: str, drug: str) -> dict:
    """The true model with ``ct``'s log fold change for ``drug`` replaced by the mean of
    the other cell types' (exact Hill curves): what a drug acting alike everywhere gives.
    ``params`` is left as it is."""
    lfc = np.array(params["max_lfc"][drug], dtype=float)
    c = [str(x) for x in params["cell_types"]].index(ct)
    lfc[c] = np.delete(lfc, c, axis=0).mean(axis=0)
    return {**params, "max_lfc": {**params["max_lfc"], drug: lfc.tolist()}}


def _score_truths(real: ad.AnnData, train: ad.AnnData, ct: str, drug: str,
                  predictors: list[tuple[str, dict]], per_group: int) -> pd.DataFrame:
    """``real``'s conditions of (ct, drug) scored with each parameter set's true means."""
    from scdiff.datasets import true_mean

    doses = sorted(real.obs["dose"].unique())
    rows = []
    for name, p in predictors:
        X = np.vstack([np.repeat(true_mean(p, cell_type=ct, drug=drug, dose=d)[None], per_group, 0)
                       for d in doses])
        obs = pd.DataFrame({"cell_type": ct, "drug": drug, "dose": np.repeat(doses, per_group)})
        obs.index = obs.index.astype(str)
        fake = ad.AnnData(X.astype(np.float32), obs=obs, var=real.var.copy())
        table = evaluate_perturbation(real, fake, train=train, baselines=False)
        rows.append(summarize(table).reset_index().assign(method=name))
    return pd.concat(rows, ignore_index=True)


def ceilings(per_group: int = 10) -> pd.DataFrame:
    """The held-out combination scored with two ground-truth predictors.

    ``truth``: the true mean (``true_mean``): only the 100 real test cells per condition
    keep it below 1. ``additive oracle``: the true model with type_2's drugB log fold
    change replaced by the mean of the other cell types' (exact Hill curve), i.e. the
    best a predictor can do that assumes a drug acts alike in every cell type: the
    simulator draws a scale per (drug, cell type) and some responders react in one
    cell type only, which no training cell shows for type_2 x drugB.
    """
    train, real, params, ct, drug = _held_out_combination()
    return _score_truths(real, train, ct, drug,
                         [("truth", params), ("additive oracle", _additive_oracle(params, ct, drug))],
                         per_group)


def pair_oracles(per_group: int = 10) -> pd.DataFrame:
    """The additive oracle's ``r2_delta_top`` with each (cell type, drug) pair held out in turn.

    All cells of the pair (``simulated.h5ad``, both splits) are the held-out ones and every
    other cell the training data, so the figure for type_2 x drugB differs from
    :func:`ceilings`' (which scores the 100 test cells per dose against the training split).
    Shows how much the combination bar depends on which pair the simulator holds out.
    """
    full = ad.read_h5ad(HERE / "simulated.h5ad")
    params = dict(full.uns["simulation"])
    treated = [str(d) for d in full.obs["drug"].cat.categories if d != params["control"]]
    rows = []
    for ct in [str(c) for c in full.obs["cell_type"].cat.categories]:
        for drug in treated:
            pair = ((full.obs["cell_type"] == ct) & (full.obs["drug"] == drug)).to_numpy()
            got = _score_truths(full[pair], full[~pair], ct, drug,
                                [("truth", params), ("additive oracle", _additive_oracle(params, ct, drug))],
                                per_group).set_index("method")["r2_delta_top"]
            rows.append({"cell_type": ct, "drug": drug, "truth": got["truth"],
                         "additive_oracle": got["additive oracle"]})
    return pd.DataFrame(rows)


def low_dose_noise(n_top: int = 20, small: float = 0.05) -> pd.DataFrame:
    """What ``r2_delta_top`` measures at each dose of the held-out combination (no model).

    For the top DE genes (as :func:`scdiff.perturb.evaluate_perturbation` ranks them: the
    real test cells against the cell type's training controls): how many have a true
    change (simulator means) below ``small``, the median true change, the median error
    of the training control mean, and the share of the measured change's sum of squares
    that the true change accounts for.
    """
    from scdiff.datasets import true_mean

    train, real, params, ct, drug = _held_out_combination()
    mu, var, count, keys = group_moments(real, Design())
    base, base_var, n_base = _lookup(_control_moments(train, Design()), (ct,), Design())
    true_base = true_mean(params, cell_type=ct, drug=params["control"], dose=0.0)
    rows = []
    for i in np.argsort([k[-1] for k in keys], kind="stable"):
        d = keys[i][-1]
        delta = mu[i] - base
        top = top_de_genes(delta, var[i], count[i], base_var, n_base, n_top)
        true_delta = (true_mean(params, cell_type=ct, drug=drug, dose=d) - true_base)[top]
        rows.append({"dose": d, f"true_change_below_{small}": int((np.abs(true_delta) < small).sum()),
                     "median_true_change": float(np.median(np.abs(true_delta))),
                     "median_control_mean_error": float(np.median(np.abs(base - true_base)[top])),
                     "true_share_of_ss": float((true_delta ** 2).sum() / (delta[top] ** 2).sum())})
    return pd.DataFrame(rows)


def _ridge(X: np.ndarray, y: np.ndarray, lam: float = 10.0):
    mu, ym = X.mean(0), y.mean()
    Xc = X - mu
    w = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return lambda Z: (Z - mu) @ w + ym


def pbmc_s_score(encoder: str, seed: int, steps, device: str, space: str = "auto") -> dict:
    """Generated cells' S-phase score against the S_score asked for (a covariate as a dose)."""
    train = ad.read_h5ad(HERE / "pbmc_train.h5ad")
    test = ad.read_h5ad(HERE / "pbmc_test.h5ad")
    model = scdiff.ConditionalDiffusion(train, condition="cell_type", dose="S_score",
                                        dose_encoder=encoder, space=space)
    model.train(steps=steps, seed=seed, device=device, progress=False)
    def dense(a: ad.AnnData) -> np.ndarray:
        x = a[:, model.genes].X
        return x.toarray() if hasattr(x, "toarray") else np.asarray(x)

    # S_score read from expression by a ridge fit on real training cells
    readout = _ridge(dense(train), train.obs["S_score"].to_numpy())
    like = pd.concat([test.obs[["cell_type", "S_score"]]] * 5, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fake = model.sample(like=like, seed=seed, device=device)
    asked = like["S_score"].to_numpy()
    gen = readout(np.asarray(fake.X))
    hi = asked > np.quantile(asked, 0.8)
    return {
        "encoder": encoder,
        "corr_generated": float(np.corrcoef(asked, gen)[0, 1]),
        "corr_real_test": float(np.corrcoef(test.obs["S_score"], readout(dense(test)))[0, 1]),
        "spearman_generated": float(pd.Series(asked).corr(pd.Series(gen), method="spearman")),
        "mean_readout_top20pct_vs_rest": [float(gen[hi].mean()), float(gen[~hi].mean())],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", default="sigmoid,sinusoidal,mlp")
    parser.add_argument("--no-pair", default="sinusoidal", help="encoders also run without drug pairing")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--per-group", type=int, default=500)
    parser.add_argument("--guidance", default="[1.0]",
                        help='JSON list of guidance settings, e.g. [1.0, {"drug": 1.5, "dose": 1.5}]')
    parser.add_argument("--device", default="auto")
    parser.add_argument("--schedule", default="cosine", help="the objective: cosine (diffusion) or flow")
    parser.add_argument("--sampling", default='[["ddim", 50]]',
                        help='JSON list of [sampler, steps], e.g. [["ddim", 50], ["dpm++", 10]]')
    parser.add_argument("--pbmc", default="sigmoid", help="encoders to run the pbmc S_score check with")
    parser.add_argument("--space", default="auto", help="where the diffusion runs: auto, gene, pca or latent")
    parser.add_argument("--out", type=Path, default=Path("bench/results"),
                        help="folder of simulated.csv and pbmc.json (bench/results is git-ignored)")
    parser.add_argument("--ceilings", action="store_true",
                        help="only score the held-out combination's truth and additive oracle")
    parser.add_argument("--pair-oracles", action="store_true",
                        help="only the additive oracle with each (cell type, drug) pair held out")
    parser.add_argument("--low-dose", action="store_true",
                        help="only what r2_delta_top measures at each dose of the held-out combination")
    args = parser.parse_args()
    only = [table for flag, table in ((args.ceilings, ceilings), (args.pair_oracles, pair_oracles),
                                      (args.low_dose, low_dose_noise)) if flag]
    if only:  # the ground-truth tables need no training
        for table in only:
            print(table().round(3).to_string())
        return
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    configs = [(e, "auto") for e in args.encoders.split(",") if e]
    configs += [(e, None) for e in args.no_pair.split(",") if e]
    guidances = json.loads(args.guidance)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for enc, by in configs:
            res = simulated(enc, by, seed, args.steps, args.device, args.per_group, guidances,
                            args.schedule, json.loads(args.sampling), args.space)
            print(res.round(3).to_string(), flush=True)
            results.append(res)
            pd.concat(results).to_csv(args.out / "simulated.csv", index=False)
    pbmc = [pbmc_s_score(e, 0, args.steps, args.device, args.space) for e in args.pbmc.split(",") if e]
    (args.out / "pbmc.json").write_text(json.dumps(pbmc, indent=1))
    print(json.dumps(pbmc, indent=1))


if __name__ == "__main__":
    main()
