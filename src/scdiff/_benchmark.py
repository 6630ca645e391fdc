"""``scdiff benchmark``: scdiff against simple baselines on one train/test split, with the floor."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import anndata as ad
import pandas as pd

from scdiff import metrics
from scdiff._report import write_report
from scdiff.data import condition_keys
from scdiff.data._io import atomic_write, check_out_dir
from scdiff.model import ConditionalDiffusion


def _log_view(model: ConditionalDiffusion, adata: ad.AnnData) -> ad.AnnData:
    """``adata`` in the model's space (modelled genes, log-normalised), obs kept."""
    X = model.preprocessor.log_expression(adata)
    return ad.AnnData(X=X, obs=adata.obs.copy(), var=pd.DataFrame(index=model.preprocessor.genes))


def _groups(train: ad.AnnData, condition: str | Sequence[str], dose: str | Sequence[str] | None,
            max_levels: int = 20) -> list[str]:
    """The baselines' groups: the conditions, and each dose measured at few distinct values.

    A per-condition Gaussian that ignored a dose measured at a handful of levels would be
    a straw man; a dose with many distinct values (a covariate) would leave one cell per
    group, so it is left out.
    """
    return condition_keys(condition) + [d for d in condition_keys(dose)
                                        if train.obs[d].nunique() <= max_levels]


def benchmark(
    train: ad.AnnData,
    test: ad.AnnData,
    *,
    condition: str | Sequence[str],
    dose: str | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    layer: str | None = None,
    n_genes: int = 2000,
    model_kwargs: dict | None = None,
    train_kwargs: dict | None = None,
    sample_kwargs: dict | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
    variants: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Train scdiff on ``train``, generate ``like=test``, score it and the baselines.

    Every method is scored by :func:`scdiff.evaluate` against ``test`` with
    ``train=train``, so the floor is train-vs-test real cells, on the modelled genes (a
    latent-space model's other genes are left out, so that every space is scored on the
    same genes). ``variants`` (name -> keyword arguments of
    :class:`ConditionalDiffusion` on top of ``model_kwargs``) trains several models side
    by side, a column each (default: one, ``scdiff``). Returns the method-by-metric table
    (:func:`scdiff.metrics.benchmark_table`); with ``out``, also writes ``benchmark.csv``,
    ``benchmark.md``, the first model's run and its report.
    """
    if out is not None:
        out = check_out_dir(out, overwrite=overwrite)
    generated, models = {}, {}
    for name, extra in (variants or {"scdiff": {}}).items():
        model = ConditionalDiffusion(train, condition=condition, dose=dose, layer=layer,
                                     n_genes=n_genes, **{**(model_kwargs or {}), **extra})
        model.train(seed=seed, progress=progress, **(train_kwargs or {}))
        fake = model.sample(like=test.obs, seed=seed, progress=progress, **(sample_kwargs or {}))
        modelled = model.preprocessor.genes
        generated[name] = fake if list(fake.var_names) == modelled else fake[:, modelled].copy()
        models[name] = model
    model = next(iter(models.values()))
    real_train, real_test = _log_view(model, train), _log_view(model, test)
    generated.update({
        "gaussian_pca": metrics.baselines.gaussian_pca(real_train, real_test,
                                                  condition=_groups(train, condition, dose), seed=seed),
        "resample_train": metrics.baselines.resample(real_train, real_test, condition=condition, seed=seed),
    })
    tables = {name: metrics.evaluate(real_test, fake, condition=condition, train=real_train, seed=seed)
              for name, fake in generated.items()}
    table = metrics.benchmark_table(tables)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        first = next(iter(models))
        model.save(out / "run", overwrite=overwrite)
        atomic_write(out / "benchmark.csv", lambda tmp: table.to_csv(tmp))
        atomic_write(out / "benchmark.md", lambda tmp: tmp.write_text(markdown_table(table)))
        write_report(out / "report", real_test, generated[first], tables[first],
                        condition=condition, title="scdiff vs held-out real cells",
                        overwrite=overwrite, seed=seed)
    return table


def markdown_table(table: pd.DataFrame) -> str:
    """A metric-by-method table as GitHub markdown (numbers to 4 significant digits)."""
    def fmt(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = [str(c) for c in table.columns]
    lines = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {idx} | " + " | ".join(fmt(v) for v in row) + " |" for idx, row in table.iterrows()]
    return "\n".join(lines) + "\n"
