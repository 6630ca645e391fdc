"""scdiff.pl: every plot draws what it should, saves headless, and honours ax/show/save."""

from __future__ import annotations

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

matplotlib.use("Agg")

import scdiff.metrics  # noqa: E402
import scdiff.pl  # noqa: E402
from scdiff import InputError  # noqa: E402


def make_pair(sparse: bool = False) -> tuple[ad.AnnData, ad.AnnData]:
    rates = np.random.default_rng(123).gamma(2.0, 1.0, size=(3, 30))
    out = []
    for seed in (1, 2):
        X = np.log1p(np.random.default_rng(seed).poisson(np.repeat(rates, 40, axis=0)))
        a = ad.AnnData(sp.csr_matrix(X, dtype=np.float32) if sparse else X.astype(np.float32))
        a.var_names = [f"g{i}" for i in range(30)]
        a.obs["cell_type"] = pd.Categorical(np.repeat(["A", "B", "C"], 40))
        out.append(a)
    return out[0], out[1]


def test_compare_two_panels_and_saves(tmp_path):
    real, fake = make_pair(sparse=True)
    axes = scdiff.pl.compare(real, fake, color="cell_type", basis="pca", show=False)
    assert [a.get_title() for a in axes] == ["origin", "cell_type"]
    assert len(axes[0].collections[0].get_offsets()) == 240
    scdiff.pl.compare(real, fake, basis="pca", save=tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_compare_umap_and_given_axes():
    import matplotlib.pyplot as plt

    real, fake = make_pair()
    fig, axes = plt.subplots(1, 2)
    out = scdiff.pl.compare(real, fake, color="cell_type", ax=axes, show=False)
    assert out[0] is axes[0] and out[0].get_xlabel() == "UMAP1"
    with pytest.raises(InputError, match="2 panel"):
        scdiff.pl.compare(real, fake, color="cell_type", ax=axes[0], show=False)
    plt.close(fig)


def test_mean_scatter_one_panel_per_condition():
    real, fake = make_pair()
    axes = scdiff.pl.mean_scatter(real, fake, condition="cell_type", show=False)
    assert [a.get_title().split("\n")[0] for a in axes] == ["A", "B", "C"]
    assert "r = 0.9" in axes[0].get_title()
    assert len(scdiff.pl.mean_scatter(real, fake, show=False)) == 1


def test_marker_dotplot_rows_real_and_generated(tmp_path):
    real, fake = make_pair()
    ax = scdiff.pl.marker_dotplot(real, fake, condition="cell_type", n_genes=2,
                                  save=tmp_path / "d.png")
    assert ax is not None and (tmp_path / "d.png").exists()
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["A (real)", "A (generated)"]
    with pytest.raises(InputError, match="two conditions"):
        scdiff.pl.marker_dotplot(real, fake[fake.obs.cell_type == "A"], condition="cell_type")


def test_metric_bars_from_an_evaluate_table():
    real, fake = make_pair()
    table = scdiff.metrics.evaluate(real, fake, condition="cell_type", n_pcs=10)
    axes = scdiff.pl.metric_bars(table, show=False)
    assert len(axes) == (table.group == "overall").sum()
    with pytest.raises(InputError, match="group 'Z' not in the table"):
        scdiff.pl.metric_bars(table, group="Z", show=False)


def test_loss_from_csv_and_dataframe(tmp_path):
    steps = np.arange(200)
    log = pd.DataFrame({"step": steps, "loss": 1.0 / (steps + 1), "lr": 1e-3 * np.ones(200)})
    log.to_csv(tmp_path / "log.csv", index=False)
    ax = scdiff.pl.loss(tmp_path / "log.csv", show=False)
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    ax = scdiff.pl.loss(log[["step", "loss"]], smooth=1, logy=False, show=False)
    assert len(ax.lines) == 1
    with pytest.raises(InputError, match="needs step and loss"):
        scdiff.pl.loss(log[["step"]], show=False)
    with pytest.raises(InputError, match="does not exist"):
        scdiff.pl.loss(tmp_path / "missing.csv", show=False)


def test_public_plot_conventions():
    import inspect

    for name in scdiff.pl.__all__:
        f = getattr(scdiff.pl, name)
        params = inspect.signature(f).parameters
        assert {"ax", "show", "save"} <= set(params), name
        assert all(p.kind == p.KEYWORD_ONLY for p in params.values() if p.default is not p.empty)
        assert "Examples" in f.__doc__, name


def test_loss_accepts_a_model_and_its_log_rows(tiny_run):
    import scdiff

    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    assert scdiff.pl.loss(model, show=False) is not None
    assert scdiff.pl.loss(model.log, show=False) is not None
