"""The spaces the diffusion runs in: the count autoencoder's likelihood (golden values), the
PCA space, the latent model end to end (every gene out, counts, round trips)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import nbinom

import scdiff
from scdiff import InputError
from scdiff.data import log_normalize
from scdiff.data._counts import CountCells, counts_of
from scdiff.nn import CountAutoencoder, nb_log_likelihood
from scdiff.space import PCASpace
from scdiff.train import CountObjective
from scdiff.train._objectives import nb_sparse_log_likelihood
from tests.conftest import make_counts

# --- the likelihood ----------------------------------------------------------------------------


@pytest.mark.parametrize("mu,theta", [(0.3, 0.5), (2.0, 3.0), (40.0, 10.0), (1e-3, 2.0)])
def test_nb_log_likelihood_is_scipys_nbinom(mu, theta):
    k = np.array([0, 1, 2, 5, 17, 60], dtype=np.float64)
    want = nbinom.logpmf(k, theta, theta / (theta + mu))
    got = nb_log_likelihood(torch.tensor(k), torch.tensor(mu), torch.tensor(np.log(theta))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_sparse_likelihood_is_the_dense_sum():
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(0.3, 2.0, size=(6, 9))).astype(np.float32)
    log_mean = torch.tensor(rng.normal(0.0, 1.0, size=(6, 9)), dtype=torch.float32)
    log_theta = torch.tensor(rng.normal(1.0, 0.3, size=9), dtype=torch.float32)
    dense = nb_log_likelihood(torch.from_numpy(counts), log_mean.exp(), log_theta).sum(1)
    c = sp.coo_matrix(counts)
    rows, cols = torch.from_numpy(c.row.astype(np.int64)), torch.from_numpy(c.col.astype(np.int64))
    sparse = nb_sparse_log_likelihood(log_mean, log_theta, rows, cols, torch.from_numpy(c.data))
    np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-5, atol=1e-4)


def test_the_autoencoder_learns_counts_of_two_programmes():
    """Cells on a one-dimensional programme: the evidence bound falls well below the one of
    an untrained decoder that knows only the genes' means."""
    rng = np.random.default_rng(1)
    f = rng.normal(size=(400, 1))
    rate = np.exp(np.log(3.0) + f * rng.choice([-0.8, 0.8], size=(1, 40)))
    counts = sp.csr_matrix(rng.poisson(rate).astype(np.float32))
    x = (np.log1p(counts.toarray()) - np.log1p(counts.toarray()).mean(0)).astype(np.float32)
    sizes = np.asarray(counts.sum(1)).ravel()
    cells = CountCells(x, counts, sizes)
    torch.manual_seed(0)
    ae = CountAutoencoder(40, 40, latent_dim=2, width=32, dropout=0.0)
    objective = CountObjective(kl_weight=0.1, target_sum=1e4)
    objective.prepare(ae, torch.device("cpu"))
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    batches, gen = cells.batches(100, seed=0), torch.Generator().manual_seed(0)
    first = None
    import contextlib

    for step in range(300):
        loss = objective(ae, next(batches), gen, contextlib.nullcontext(), step)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first - 0.5


# --- counts for the autoencoder -----------------------------------------------------------------


def test_counts_of_log_data_invert_the_normalisation_with_n_counts():
    rng = np.random.default_rng(2)
    counts = rng.poisson(2.0, size=(20, 15)).astype(np.float32)
    lib = counts.sum(1) + 50.0  # a library over more genes than these
    x = np.log1p(counts / lib[:, None] * 1e4).astype(np.float32)
    obs = pd.DataFrame({"n_counts": lib})
    back, sizes = counts_of(sp.csr_matrix(x), obs, "log")
    np.testing.assert_array_equal(back.toarray(), counts)
    np.testing.assert_array_equal(sizes, lib)
    raw, raw_sizes = counts_of(sp.csr_matrix(counts), obs.iloc[:0], "counts")
    np.testing.assert_array_equal(raw.toarray(), counts) and np.testing.assert_array_equal(
        raw_sizes, counts.sum(1))
    with pytest.raises(InputError, match="space='latent'.*library size.*n_counts"):
        counts_of(sp.csr_matrix(x), pd.DataFrame(index=range(20)), "log")


def test_count_cells_batches_hold_the_counts_of_their_cells():
    counts = sp.csr_matrix(np.arange(40, dtype=np.float32).reshape(10, 4) % 3)
    x = np.arange(10, dtype=np.float32)[:, None].repeat(2, 1)
    cells = CountCells(x, counts, np.asarray(counts.sum(1)).ravel() + 1)
    xb, sizes, rows, cols, vals = next(cells.batches(4, seed=0))
    dense = torch.zeros(4, 4).index_put_((rows, cols), vals)
    idx = xb[:, 0].long().numpy()  # each cell's x is its row number
    np.testing.assert_array_equal(dense.numpy(), counts[idx].toarray())
    np.testing.assert_array_equal(sizes.numpy(), np.asarray(counts[idx].sum(1)).ravel() + 1)


# --- the PCA space ------------------------------------------------------------------------------


def test_pca_space_is_whitened_and_its_residual_restores_each_genes_spread():
    rng = np.random.default_rng(3)
    z = (rng.normal(size=(2000, 3)) @ rng.normal(size=(3, 12)) + 0.5 * rng.normal(size=(2000, 12)))
    space = PCASpace(12, latent_dim=3)
    space.fit_moments(len(z), z.sum(0), z.T @ z)
    scores = space.encode(z)
    np.testing.assert_allclose(scores.std(0, ddof=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(space.decode(scores), z - (z - space.decode(scores)), atol=1e-4)
    noisy = space.decode(scores, np.random.default_rng(0))
    np.testing.assert_allclose(noisy.std(0), z.std(0), rtol=0.08)
    # full rank: encoding and decoding give the cells back
    full = PCASpace(12, latent_dim=12)
    full.fit_moments(len(z), z.sum(0), z.T @ z)
    np.testing.assert_allclose(full.decode(full.encode(z)), z, atol=1e-3)


# --- the latent model end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def latent_model():
    a = make_counts(n_per_type=40, n_genes=60, seed=5)
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", dose="dose", n_genes=20,
                                        space="latent", latent_dim=8, width=32, depth=1)
    return model.train(steps=60, batch_size=32, progress=False), a


def test_a_latent_model_writes_every_gene_as_counts_and_their_log(latent_model):
    model, a = latent_model
    assert model.space.kind == "latent" and model.network_config["n_genes"] == 8 + 1  # + library
    assert len(model.preprocessor.genes) == 20 and model.genes == list(a.var_names)
    fake = model.sample(30, seed=0)
    assert list(fake.var_names) == list(a.var_names) and fake.shape == (30, 60)
    counts = fake.layers["counts"]
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    # X is what a real cell's counts give: log1p CP10k of its own counts (counts data)
    np.testing.assert_allclose(fake.X, log_normalize(counts), atol=1e-5)
    assert fake.uns["scdiff"]["model_space"] == "latent" and fake.uns["scdiff"]["zeros"] == "counts"
    assert "negative binomial" in fake.uns["scdiff"]["layers"]["counts"]
    swapped = model.sample(30, seed=0, counts=True)
    np.testing.assert_array_equal(swapped.X, counts)
    np.testing.assert_allclose(swapped.layers["log1p"], fake.X)
    sparse = model.sample(30, seed=0, sparse=True)
    assert sp.issparse(sparse.X) and np.allclose(sparse.X.toarray(), fake.X)


def test_a_latent_model_saves_loads_and_samples_the_same(latent_model, tmp_path):
    model, _ = latent_model
    model.save(tmp_path / "run")
    assert (tmp_path / "run" / "space.safetensors").exists()
    assert (tmp_path / "run" / "space_log.csv").exists()
    again = scdiff.ConditionalDiffusion.load(tmp_path / "run")
    a, b = model.sample(25, seed=3), again.sample(25, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    info = again.info()
    assert info["space"]["kind"] == "latent" and info["genes"] == 60 and info["modelled_genes"] == 20
    assert info["space_train"]["steps"] == 60


def test_an_edited_space_file_is_refused(latent_model, tmp_path):
    model, _ = latent_model
    model.save(tmp_path / "run")
    (tmp_path / "run" / "space.safetensors").write_bytes(b"not the weights")
    with pytest.raises(scdiff.RunError, match="space.safetensors does not match the hash"):
        scdiff.ConditionalDiffusion.load(tmp_path / "run")


def test_a_latent_model_does_what_a_gene_model_does(latent_model):
    model, a = latent_model
    like = model.sample(like=a[:15], seed=1)
    assert like.obs["cell_type"].tolist() == a.obs["cell_type"][:15].tolist()
    guided = model.sample(20, condition={"cell_type": "t1"}, dose={"dose": 10.0},
                          guidance={"cell_type": 2.0, "dose": 1.0}, seed=2)
    assert (guided.obs["cell_type"] == "t1").all() and np.isfinite(guided.X).all()
    moved = model.sample(from_=a[:10], condition={"cell_type": "t2"}, strength=0.5, seed=4)
    assert (moved.obs["cell_type"] == "t2").all() and moved.shape == (10, 60)
    back = model.sample(from_=a[:10], strength=0.3, invert=True, seed=4)
    assert back.shape == (10, 60)
    with pytest.raises(InputError, match="zeros='cell'.*latent-space model"):
        model.sample(5, zeros="cell")


def test_large_guidance_in_a_latent_space_stays_in_the_data_s_range(latent_model):
    """The guard clips each step's predicted latent to the training latents' box: the
    decoder then never sees a point far from the cells it learned."""
    model, a = latent_model
    top = float(np.log1p(1e4))
    for weight in (5.0, 10.0):
        fake = model.sample(100, guidance=weight, seed=1)
        assert fake.uns["scdiff"]["clip"] is True
        assert np.isfinite(fake.X).all() and fake.X.max() <= top
        assert np.isfinite(fake.layers["counts"]).all()
    wild = model.sample(100, guidance=10.0, seed=1, clip=False)
    assert model.space.upper is not None and np.isfinite(wild.X).all()


def test_inversion_in_a_latent_space_is_deterministic_up_to_the_count_draw(latent_model):
    model, a = latent_model
    cells = a[:12]
    one = model.sample(from_=cells, strength=0.5, invert=True, seed=3)
    two = model.sample(from_=cells, strength=0.5, invert=True, seed=3)
    np.testing.assert_array_equal(one.X, two.X)
    assert one.uns["scdiff"]["invert"] is True


def test_translation_at_low_strength_keeps_the_cell_in_latent_space(latent_model):
    model, a = latent_model
    cells = a[a.obs["cell_type"] == "t0"][:20]
    same = model.sample(from_=cells, strength=0.05, seed=0, counts=True)
    far = model.sample(from_=cells, strength=1.0, seed=0, counts=True)
    real = cells.X.toarray()

    def dist(x):
        return float(np.abs(np.log1p(x) - np.log1p(real)).mean())

    assert dist(same.X) < dist(far.X)


def test_auto_picks_latent_where_library_sizes_are_known():
    counts = make_counts(n_per_type=10, n_genes=12, seed=1)
    assert scdiff.ConditionalDiffusion(counts, condition="cell_type").space.kind == "latent"
    logged = counts.copy()
    logged.X = log_normalize(logged.X)
    assert scdiff.ConditionalDiffusion(logged, condition="cell_type").space.kind == "gene"
    logged.obs["n_counts"] = np.asarray(counts.X.sum(1)).ravel()
    assert scdiff.ConditionalDiffusion(logged, condition="cell_type").space.kind == "latent"
    # a dose (or a second condition): combinations to compose, which gene space does better
    assert scdiff.ConditionalDiffusion(counts, condition="cell_type", dose="dose").space.kind == "gene"


def test_the_autoencoder_drops_out_on_small_data_only_unless_told(monkeypatch):
    from scdiff.model import _space

    assert _space.autoencoder_dropout(4_999) == 0.3 and _space.autoencoder_dropout(5_000) == 0.0
    monkeypatch.setattr(_space, "LARGE_DATA_CELLS", 40)  # 3 types x 10 cells is small, x 20 large
    small, large = make_counts(n_per_type=10, n_genes=12, seed=1), make_counts(n_per_type=20, n_genes=12)
    assert scdiff.ConditionalDiffusion(small, condition="cell_type").space.dropout == 0.3
    assert scdiff.ConditionalDiffusion(large, condition="cell_type").space.dropout == 0.0
    given = scdiff.ConditionalDiffusion(large, condition="cell_type", autoencoder={"dropout": 0.2})
    assert given.space.dropout == 0.2 and given.space.build_autoencoder().encoder[3].p == 0.2


def test_space_options_are_checked():
    a = make_counts(n_per_type=10, n_genes=12, seed=1)
    with pytest.raises(InputError, match="space='genes' needs to be one of auto, gene, pca, latent"):
        scdiff.ConditionalDiffusion(a, condition="cell_type", space="genes")
    with pytest.raises(InputError, match="latent_dim=1 needs to be a whole number >= 2"):
        scdiff.ConditionalDiffusion(a, condition="cell_type", space="pca", latent_dim=1)
    with pytest.raises(InputError, match="latent_dim=12 needs to be below the 12 modelled genes"):
        scdiff.ConditionalDiffusion(a, condition="cell_type", space="pca", latent_dim=12)
    # without a latent_dim, a PCA of 12 genes keeps 11 components (32 otherwise)
    assert scdiff.ConditionalDiffusion(a, condition="cell_type", space="pca").space.dim == 11
    assert scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent").space.latent_dim == 64
    with pytest.raises(InputError, match="autoencoder=.*names \\['depht'\\]"):
        scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent", autoencoder={"depht": 2})
    logged = a.copy()
    logged.X = log_normalize(logged.X)
    with pytest.raises(InputError, match="space='latent' decodes counts"):
        scdiff.ConditionalDiffusion(logged, condition="cell_type", space="latent")
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent")
    with pytest.raises(InputError, match="autoencoder_steps=0 needs to be a whole number >= 1"):
        model.train(steps=5, autoencoder_steps=0)


def test_a_pca_model_trains_samples_and_reloads(tmp_path):
    a = make_counts(n_per_type=30, n_genes=40, seed=2)
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", space="pca", latent_dim=6,
                                        width=32, depth=1).train(steps=40, progress=False)
    assert model.network_config["n_genes"] == 6 and model.genes == list(a.var_names)
    fake = model.sample(12, seed=0)
    assert fake.shape == (12, 40) and fake.uns["scdiff"]["model_space"] == "pca"
    model.save(tmp_path / "run")
    np.testing.assert_array_equal(scdiff.ConditionalDiffusion.load(tmp_path / "run").sample(12, seed=0).X,
                                  fake.X)


def test_log_data_with_n_counts_come_back_on_their_own_scale():
    """pbmc-like data: log1p of counts over a library larger than the genes held."""
    rng = np.random.default_rng(4)
    counts = rng.poisson(rng.gamma(0.5, 4.0, size=(90, 30))).astype(np.float32)
    lib = counts.sum(1) * 3.0 + 10
    a = ad.AnnData(sp.csr_matrix(np.log1p(counts / lib[:, None] * 1e4).astype(np.float32)),
                   obs=pd.DataFrame({"cell_type": pd.Categorical(np.repeat(["a", "b", "c"], 30)),
                                     "n_counts": lib}, index=[f"c{i}" for i in range(90)]))
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", latent_dim=4, width=32, depth=1)
    model.train(steps=40, progress=False)
    fake = model.sample(40, seed=0)
    # each cell divided by one library size, generated with it (about the training ones,
    # three times the counts held), not by the cell's own total
    counts = fake.layers["counts"]
    for x, c in zip(fake.X, counts, strict=True):
        per_read = np.expm1(x[c > 0]) / c[c > 0]
        np.testing.assert_allclose(per_read, per_read[0], rtol=1e-3)
        assert 1e4 / (3 * lib.max()) < per_read[0] < 3 * 1e4 / lib.min()
        assert not np.isclose(per_read[0], 1e4 / c.sum(), rtol=0.05)


# --- resuming both phases, backed data ------------------------------------------------------


def _stopping_in(phase: int, after: int):
    """A graceful_stop stand-in: the stop flag of the ``phase``-th fit (0: the autoencoder,
    1: the diffusion) turns true after ``after`` steps."""
    import contextlib

    from scdiff._interrupt import StopFlag

    seen = []

    @contextlib.contextmanager
    def factory():
        index = len(seen)
        seen.append(index)

        class Counting(StopFlag):
            n = 0

            def __call__(self) -> bool:
                self.n += 1
                if index == phase and self.n >= after:
                    self.requested, self.signal_name = True, "SIGINT"
                return self.requested

        yield Counting()

    return factory


@pytest.mark.parametrize("phase,after", [(0, 25), (1, 30)])
def test_an_interrupted_latent_run_resumes_bit_for_bit(tmp_path, monkeypatch, phase, after):
    import scdiff.model._fit as fit_module

    a = make_counts(n_per_type=20, n_genes=24, seed=8)

    def model():
        return scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent", latent_dim=4,
                                           width=16, depth=1, autoencoder={"width": 16})

    kw = dict(steps=60, batch_size=16, progress=False, seed=1, checkpoint_every=20)
    ref = model().train(**kw)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(fit_module, "graceful_stop", _stopping_in(phase, after))
    with pytest.raises(scdiff.TrainingInterrupted, match=f"step {after} of 60"):
        model().train(checkpoint_dir=run, **kw)
    monkeypatch.undo()
    resumed = model().train(checkpoint_dir=run, resume=True, **kw)
    for key, value in ref.ema_state.items():
        assert torch.equal(value, resumed.ema_state[key]), key
    for key, value in ref.space.tensors().items():
        assert torch.equal(value, resumed.space.tensors()[key]), key
    assert [r["step"] for r in resumed.space_log] == [r["step"] for r in ref.space_log]
    assert [r["step"] for r in resumed.log] == [r["step"] for r in ref.log]


def test_a_latent_model_trains_from_backed_files(tmp_path):
    a = make_counts(n_per_type=30, n_genes=25, seed=9)
    a.write_h5ad(tmp_path / "a.h5ad")
    b = make_counts(n_per_type=30, n_genes=25, seed=10)
    b.obs_names = [f"b{i}" for i in range(b.n_obs)]
    b.write_h5ad(tmp_path / "b.h5ad")
    from scdiff.data._backed import read_backed

    files = read_backed([tmp_path / "a.h5ad", tmp_path / "b.h5ad"])
    model = scdiff.ConditionalDiffusion(files, condition="cell_type", space="latent", latent_dim=4,
                                        width=16, depth=1)
    counts = model._data.counts
    x, sizes, rows, cols, vals = next(counts.batches(16, seed=0))
    assert x.shape == (16, 25) and sizes.shape == (16,) and vals.min() >= 1
    model.train(steps=30, batch_size=16, progress=False)
    fake = model.sample(10, seed=0)
    assert fake.shape == (10, 25) and np.isfinite(fake.X).all()
    # the encoder pass covers every cell of both files, in order
    assert model.space.latent_mean.shape == (4,)


def test_the_cli_trains_in_a_latent_space_and_says_so(tmp_path):
    from typer.testing import CliRunner

    from scdiff.cli import app

    a = make_counts(n_per_type=20, n_genes=30, seed=11)
    a.write_h5ad(tmp_path / "d.h5ad")
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(tmp_path / "d.h5ad"), "--condition", "cell_type",
                              "--out", str(tmp_path / "run"), "--steps", "20", "--space", "latent",
                              "--latent-dim", "4", "--genes", "10", "--quiet"])
    assert res.exit_code == 0, res.output
    info = runner.invoke(app, ["info", str(tmp_path / "run"), "--json"])
    assert '"kind": "latent"' in info.output and '"genes": 30' in info.output
    res = runner.invoke(app, ["sample", str(tmp_path / "run"), "--n-cells", "7", "--out",
                              str(tmp_path / "g.h5ad"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert ad.read_h5ad(tmp_path / "g.h5ad").shape == (7, 30)
    bad = runner.invoke(app, ["train", str(tmp_path / "d.h5ad"), "--condition", "cell_type",
                              "--out", str(tmp_path / "run2"), "--space", "latnet"])
    assert bad.exit_code == 1 and "--space latnet needs to be one of" in bad.output
    assert not (tmp_path / "run2").exists()


def test_posterior_draws_are_fresh_each_epoch_and_resume_where_they_left():
    from scdiff.train._data import PosteriorCells

    cells = PosteriorCells(torch.zeros(12, 3), torch.zeros(12, 1, dtype=torch.long), torch.zeros(12, 0),
                           spread=torch.full((12, 3), 0.5))
    run = cells.batches(4, seed=1)
    first = [next(run)[0] for _ in range(6)]  # two epochs of three batches
    assert not torch.equal(first[0], first[3])  # the same cells drawn again differ
    assert 0.3 < float(torch.cat(first).std()) < 0.7
    resumed = cells.batches(4, seed=1, start_step=4)
    torch.testing.assert_close(next(resumed)[0], first[4], rtol=0, atol=0)
    half = cells.shard(1, 2)
    assert len(half) == 6 and half.spread.shape == (6, 3)


def test_a_latent_model_can_train_on_posterior_draws(tmp_path):
    a = make_counts(n_per_type=20, n_genes=24, seed=12)
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", space="latent", latent_dim=4,
                                        width=16, depth=1, autoencoder={"posterior_noise": True})
    model.train(steps=20, batch_size=16, progress=False)
    assert model.space.to_config()["posterior_noise"] is True
    model.save(tmp_path / "run")
    again = scdiff.ConditionalDiffusion.load(tmp_path / "run")
    assert again.space.posterior_noise and again.sample(5, seed=0).shape == (5, 24)
def test_benchmark_scores_spaces_side_by_side_on_the_modelled_genes(tmp_path):
    from typer.testing import CliRunner

    from scdiff._benchmark import benchmark
    from scdiff.cli import app

    train = make_counts(n_per_type=30, n_genes=30, seed=14)
    test = make_counts(n_per_type=12, n_genes=30, seed=15)
    test.obs_names = [f"t{i}" for i in range(test.n_obs)]
    table = benchmark(train, test, condition="cell_type", n_genes=20, seed=0,
                      model_kwargs={"width": 16, "depth": 1}, train_kwargs={"steps": 10},
                      variants={"gene": {"space": "gene"}, "latent": {"space": "latent", "latent_dim": 4}})
    assert {"gene", "latent", "gaussian_pca", "resample_train", "floor"} <= set(table.columns)
    assert {"corr_distance", "membership_auc"} <= set(table.index)
    train.write_h5ad(tmp_path / "train.h5ad")
    test.write_h5ad(tmp_path / "test.h5ad")
    res = CliRunner().invoke(app, ["benchmark", str(tmp_path / "train.h5ad"), str(tmp_path / "test.h5ad"),
                                   "-c", "cell_type", "--steps", "5", "--space", "pca", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert '"membership_auc"' in res.output

