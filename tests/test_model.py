"""The Python API: fit on an in-memory AnnData, sample, save, load."""

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import scdiff
from scdiff import InputError, RunError
from tests.conftest import make_counts


def _tiny(adata, **kw):
    return scdiff.ConditionalDiffusion(adata, width=32, depth=1, **kw)


def test_sample_shapes_obs_and_provenance(tiny_run):
    path, train = tiny_run
    model = scdiff.ConditionalDiffusion.load(path)
    fake = model.sample(20, condition={"cell_type": "t1"}, dose={"dose": 1.0}, seed=3)
    assert fake.shape == (20, train.n_vars)
    assert list(fake.var_names) == list(train.var_names)
    assert list(fake.obs.cell_type.cat.categories) == ["t0", "t1", "t2"]
    assert (fake.obs.cell_type == "t1").all() and (fake.obs.dose == 1.0).all()
    assert fake.uns["scdiff"]["seed"] == 3 and fake.uns["scdiff"]["sampler"] == "unipc"
    assert np.isfinite(fake.X).all() and (fake.X >= 0).all()
    both = ad.concat([train, fake])
    assert both.n_obs == train.n_obs + 20 and both.obs.cell_type.dtype == "category"


def test_like_matches_counts_and_seed_reproduces(tiny_run):
    path, train = tiny_run
    model = scdiff.ConditionalDiffusion.load(path)
    ref = train[train.obs.cell_type != "t0"]
    fake = model.sample(like=ref)
    counts = lambda obs: {k: v for k, v in obs.cell_type.value_counts().items() if v}  # noqa: E731
    assert counts(fake.obs) == counts(ref.obs) == {"t1": 40, "t2": 40}
    assert np.allclose(np.sort(fake.obs.dose), np.sort(ref.obs.dose))
    again = model.sample(like=ref)
    assert np.array_equal(fake.X, again.X)
    other = model.sample(like=ref, seed=1)
    assert not np.array_equal(fake.X, other.X)
    assert model.sample(like=ref.obs).n_obs == ref.n_obs  # an obs frame is enough


def test_default_sampling_follows_training_proportions(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    fake = model.sample(30, steps=5)
    assert fake.obs.cell_type.value_counts().to_dict() == {"t0": 10, "t1": 10, "t2": 10}


def test_guidance_and_ddpm_run(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    a = model.sample(8, guidance=2.0, steps=10)
    b = model.sample(8, guidance={"cell_type": 2.0, "dose": 0.5}, steps=10)
    c = model.sample(8, sampler="ddpm", steps=20)
    assert a.shape == b.shape == c.shape == (8, 30)
    assert not np.array_equal(a.X, model.sample(8, guidance=1.0, steps=10).X)


def test_sampling_errors(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    with pytest.raises(InputError, match="valid values of 'cell_type' are: t0, t1, t2"):
        model.sample(5, condition={"cell_type": "B cell"})
    with pytest.raises(InputError, match="not one the model was trained on"):
        model.sample(5, condition={"batch": "1"})
    for n in (0, -3, 10**12):
        with pytest.raises(InputError, match="n_cells"):
            model.sample(n)
    with pytest.raises(InputError, match="sampler"):
        model.sample(5, sampler="euler")
    with pytest.raises(InputError, match="lacks the column"):
        model.sample(like=pd.DataFrame({"other": ["a"]}))


def test_save_refuses_overwrite_and_load_checks(tiny_run, tmp_path):
    path, _ = tiny_run
    model = scdiff.ConditionalDiffusion.load(path)
    with pytest.raises(RunError, match="already exists"):
        model.save(path)
    files = sorted(p.name for p in path.iterdir())
    assert files == ["config.json", "ema.safetensors", "loss.png", "model.safetensors", "train_log.csv"]
    with pytest.raises(RunError, match="does not exist"):
        scdiff.ConditionalDiffusion.load(tmp_path / "nothing")
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in path.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "ema.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "ema.safetensors").write_bytes(bytes(data))
    with pytest.raises(RunError, match="altered"):
        scdiff.ConditionalDiffusion.load(copy)


def test_training_is_reproducible_on_cpu():
    a = make_counts(seed=5)
    m1 = _tiny(a, condition="cell_type").train(steps=15, batch_size=16, progress=False)
    m2 = _tiny(a, condition="cell_type").train(steps=15, batch_size=16, progress=False)
    for k in m1.ema_state:
        assert torch.equal(m1.ema_state[k], m2.ema_state[k])
    assert len(m1.log) >= 1 and m1.log[-1]["step"] == 15


def test_loss_weighting_is_recorded_and_changes_the_fit(tmp_path):
    a = make_counts(seed=5)
    default = _tiny(a, condition="cell_type").train(steps=10, batch_size=16, progress=False)
    assert (default.train_config.loss_weighting, default.train_config.snr_gamma) == ("snr_cap", 5.0)
    plain = _tiny(a, condition="cell_type").train(steps=10, batch_size=16, progress=False,
                                                   loss_weighting="none")
    assert plain.train_config.loss_weighting == "none"
    assert any(not torch.equal(default.ema_state[k], plain.ema_state[k]) for k in default.ema_state)
    for bad, match in [({"loss_weighting": "p2"}, "loss_weighting='p2'"),
                       ({"snr_gamma": 0.0}, "snr_gamma=0.0")]:
        with pytest.raises(InputError, match=match):
            _tiny(a, condition="cell_type").train(steps=2, progress=False, **bad)
    # a run saved before loss weighting existed trained with the plain loss, and says so
    config = default.train_config.to_config()
    del config["loss_weighting"], config["snr_gamma"]
    old = scdiff.train.TrainConfig.from_config(config)
    assert old.loss_weighting == "none" and old.snr_gamma == 5.0
    default.save(tmp_path / "run")
    assert scdiff.ConditionalDiffusion.load(tmp_path / "run").train_config.loss_weighting == "snr_cap"


def test_training_learns_condition_means():
    """A short training separates cell types: generated means track each type's real means."""
    a = make_counts(n_per_type=80, n_genes=20, seed=7, sparse=False)
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", width=64, depth=2)
    model.train(steps=400, batch_size=64, progress=False, seed=0)
    from scdiff.data import log_normalize

    logx = log_normalize(a.X)
    for ct in ["t0", "t1", "t2"]:
        fake = model.sample(200, condition={"cell_type": ct}, steps=25)
        own = logx[(a.obs.cell_type == ct).to_numpy()].mean(0)
        r = np.corrcoef(fake.X.mean(0), own)[0, 1]
        assert r > 0.9, (ct, r)


def test_constructor_errors(counts_adata):
    with pytest.raises(InputError, match="AnnData"):
        scdiff.ConditionalDiffusion(counts_adata.X.toarray())
    with pytest.raises(InputError, match="no cells"):
        scdiff.ConditionalDiffusion(counts_adata[:0].copy())
    scaled = counts_adata.copy()
    scaled.X = scaled.X.toarray() - 1.0
    with pytest.raises(InputError, match="scaled"):
        scdiff.ConditionalDiffusion(scaled)
    with pytest.raises(RunError, match="not trained"):
        _tiny(counts_adata).sample(3)
    loaded_like = _tiny(counts_adata, condition="cell_type")
    assert "untrained" in repr(loaded_like)


def test_layer_and_dense_input(counts_adata):
    a = counts_adata.copy()
    a.layers["counts"] = a.X.copy()
    a.X = np.log1p(a.X.toarray())
    m = _tiny(a, condition="cell_type", layer="counts")
    assert m.preprocessor.input_scale == "counts" and m.preprocessor.layer == "counts"


def test_load_needs_no_training_data_and_info(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    info = model.info()
    assert info["conditions"] == {"cell_type": ["t0", "t1", "t2"]} and info["genes"] == 30
    with pytest.raises(RunError, match="holds no training data"):
        model.train(steps=1)


def test_counts_output_is_integer(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    fake = model.sample(50, condition={"cell_type": "t0"}, counts=True, steps=10)
    assert np.array_equal(fake.X, np.round(fake.X)) and (fake.X >= 0).all()
    assert fake.uns["scdiff"]["space"] == "counts" and "log1p" in fake.layers


def test_library_sizes_and_counts_match_the_training_cells(counts_adata):
    from scdiff.data import log_normalize
    from scdiff.data._library import counts_from_log, draw_library_sizes, fit_library_sizes

    lib = fit_library_sizes(counts_adata.X, counts_adata.obs, input_scale="counts", keys=["cell_type"])
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"cell_type": ["t1"] * 4000})
    draws = draw_library_sizes(lib, frame, ["cell_type"], rng)
    real = np.asarray(counts_adata[counts_adata.obs.cell_type == "t1"].X.sum(1)).ravel()
    assert real.min() - 1e-6 <= draws.min() and draws.max() <= real.max() + 1e-6
    assert abs(np.median(draws) - np.median(real)) < 0.1 * np.median(real)
    # counts drawn back from log-normalised values at the true library sizes are unbiased
    logx = log_normalize(counts_adata.X).toarray()
    tiled = np.repeat(logx, 200, axis=0)
    sizes = np.repeat(np.asarray(counts_adata.X.sum(1)).ravel(), 200)
    back = counts_from_log(tiled, sizes, rng).reshape(counts_adata.n_obs, 200, -1).mean(1)
    true = counts_adata.X.toarray()
    z = (back - true) / np.sqrt(np.maximum(true, 1) / 200)  # standard errors of the mean
    assert np.abs(z).max() < 5 and abs(z.mean()) < 0.1


def test_counts_refused_without_library_sizes(log_adata):
    model = _tiny(log_adata, condition="cell_type").train(steps=2, progress=False)
    with pytest.raises(InputError, match="without library sizes"):
        model.sample(5, counts=True)


def test_zeros_round_values_below_one_read_at_a_drawn_depth(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    assert model.library  # trained on counts: library sizes are known
    kw = dict(n_cells=200, steps=5, seed=3)
    none, gene, cell = (model.sample(**kw, zeros=z).X for z in ("none", "gene", "cell"))
    auto = model.sample(**kw)
    np.testing.assert_array_equal(auto.X, cell)
    assert auto.uns["scdiff"]["zeros"] == "cell"
    assert (none == 0).sum() <= (gene == 0).sum() < (cell == 0).sum()
    reads = np.log1p(1e4 / np.asarray(model.library["__all__"]))
    for g_row, c_row in zip(gene, cell, strict=True):
        changed = g_row != c_row
        raised = np.unique(c_row[changed & (c_row > 0)])
        assert len(raised) <= 1  # a value below one read becomes 0 or that cell's one read
        if len(raised):
            assert reads.min() - 1e-5 <= raised[0] <= reads.max() + 1e-5
            assert (g_row[changed] < raised[0]).all()
    # rounding keeps the mean: per gene, close to the mean before rounding
    assert np.abs(cell.mean(0) - gene.mean(0)).max() < 0.1 * max(gene.mean(), 1e-3) + 0.05


def test_round_below_one_read_keeps_the_mean_and_large_values():
    from scdiff.data._library import round_below_one_read

    rng = np.random.default_rng(0)
    lib = np.array([1000.0, 5000.0])  # one read: log1p(10) = 2.40 and log1p(2) = 1.10
    x = np.tile(np.array([0.0, 0.3, 1.0, 2.0, 3.0], dtype=np.float32), (2, 20000))
    out = round_below_one_read(x, lib, rng)
    read = np.log1p(1e4 / lib)
    for i in range(2):
        for v in (0.0, 0.3, 1.0, 2.0, 3.0):
            cols = x[i] == v
            if v == 0.0 or v >= read[i]:
                assert (out[i, cols] == v).all()
            else:
                np.testing.assert_allclose(np.unique(out[i, cols]), [0.0, read[i]], rtol=1e-6)
                assert abs(out[i, cols].mean() - v) < 0.03


def test_round_below_one_read_blocks_and_in_place_give_the_same_cells():
    from scdiff.data._library import round_below_one_read

    rng = np.random.default_rng(3)
    x = rng.gamma(0.3, 1.0, (301, 77)).astype(np.float32)  # odd sizes: float32 draws pair up
    lib = rng.uniform(500, 20000, 301)
    whole = round_below_one_read(x, lib, np.random.default_rng(7), block_rows=301)
    assert not np.array_equal(whole, x)  # something was rounded
    for rows in (1, 7, 4096):
        np.testing.assert_array_equal(round_below_one_read(x, lib, np.random.default_rng(7), block_rows=rows),
                                      whole)
    for rows in (1, 100, 4096):  # CSR: the same cells, only the stored values touched
        csr = round_below_one_read(sp.csr_matrix(x), lib, np.random.default_rng(7), block_rows=rows)
        assert sp.isspmatrix_csr(csr) and (csr.data != 0).all()
        np.testing.assert_array_equal(csr.toarray(), whole)
    y = x.copy()
    out = round_below_one_read(y, lib, np.random.default_rng(7), copy=False, block_rows=10)
    assert out is y
    np.testing.assert_array_equal(y, whole)
    with pytest.raises(scdiff.InputError, match="block_rows = 0"):
        round_below_one_read(x, lib, np.random.default_rng(7), block_rows=0)


def test_zeros_rejects_bad_values_and_cell_without_library_sizes(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    with pytest.raises(scdiff.InputError, match="zeros='sparse' needs to be one of"):
        model.sample(5, steps=2, zeros="sparse")
    model.parts.library = {}
    with pytest.raises(scdiff.InputError, match="zeros='cell' needs the training cells' library sizes"):
        model.sample(5, steps=2, zeros="cell")
    assert model.sample(5, steps=2).uns["scdiff"]["zeros"] == "gene"


def test_additive_path_is_on_with_two_attributes_and_survives_save_and_load(counts_adata, tiny_run,
                                                                            tmp_path):
    assert _tiny(counts_adata, condition="cell_type").network_config["additive"] is False
    assert _tiny(counts_adata, condition="cell_type", additive=True).network.additive
    # without attributes there is nothing to add: the config says so, as the network does
    assert _tiny(counts_adata, additive=True).network_config["additive"] is False
    both = _tiny(counts_adata, condition="cell_type", dose="dose")
    assert both.network_config["additive"] is True and both.network.additive
    assert not _tiny(counts_adata, condition="cell_type", dose="dose", additive=False).network.additive
    with pytest.raises(InputError, match="additive='yes' needs to be True, False or 'auto'"):
        _tiny(counts_adata, condition="cell_type", additive="yes")
    loaded = scdiff.ConditionalDiffusion.load(tiny_run[0])  # cell_type + dose: the path is saved
    assert loaded.network.additive and "offset.weight" in loaded.network.state_dict()
    # a run saved before the path existed has no "additive" entry and loads without it
    run = tmp_path / "old"
    plain = _tiny(counts_adata, condition="cell_type", dose="dose", additive=False)
    plain.train(steps=2, batch_size=16, progress=False)
    plain.save(run)
    config = json.loads((run / "config.json").read_text())
    del config["network"]["additive"]
    (run / "config.json").write_text(json.dumps(config))
    old = scdiff.ConditionalDiffusion.load(run)
    assert not old.network.additive
    assert old.sample(4, condition={"cell_type": "t0"}, dose={"dose": 1.0}, seed=0).n_obs == 4


def test_flow_models_and_the_multistep_solver(counts_adata, tmp_path):
    flow = scdiff.ConditionalDiffusion(counts_adata, condition="cell_type", width=32, depth=1,
                                       schedule="flow")
    assert flow.schedule.prediction == "flow"
    flow.train(steps=30, batch_size=32, progress=False)
    for sampler in ("ddim", "dpm++"):
        fake = flow.sample(40, steps=5, sampler=sampler)
        assert np.isfinite(fake.X).all() and fake.uns["scdiff"]["sampler"] == sampler
    assert flow.sample(10, steps=5, guidance=3.0).X.max() <= max(flow.preprocessor.max) + 1e-4
    with pytest.raises(scdiff.InputError, match="sampler='ddpm' needs a diffusion schedule"):
        flow.sample(5, sampler="ddpm")
    loaded = scdiff.ConditionalDiffusion.load(flow.save(tmp_path / "flow"))
    np.testing.assert_array_equal(loaded.sample(20, steps=4, sampler="dpm++").X,
                                  flow.sample(20, steps=4, sampler="dpm++").X)
    translated = loaded.sample(from_=counts_adata[:10], condition={"cell_type": "t1"}, steps=10)
    assert translated.n_obs == 10 and (translated.obs["cell_type"] == "t1").all()


def test_sparse_sample_holds_the_dense_sample_and_its_counts(tiny_run):
    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    dense = model.sample(40, steps=3, seed=4)
    sparse = model.sample(40, steps=3, seed=4, sparse=True)
    assert sp.isspmatrix_csr(sparse.X) and sp.isspmatrix_csr(sparse.layers["counts"])
    np.testing.assert_array_equal(sparse.X.toarray(), dense.X)
    np.testing.assert_array_equal(sparse.layers["counts"].toarray(), dense.layers["counts"])
    assert (sparse.X.data != 0).all() and (sparse.layers["counts"].data != 0).all()
    both = model.sample(40, steps=3, seed=4, sparse=True, counts=True)
    np.testing.assert_array_equal(both.X.toarray(), dense.layers["counts"])


def test_dense_to_csr_golden():
    from scdiff.data._library import dense_to_csr

    x = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, -1, 0]], dtype=np.float32)
    m = dense_to_csr(x)
    assert m.indptr.tolist() == [0, 2, 2, 4] and m.indices.tolist() == [1, 3, 0, 2]
    assert m.data.tolist() == [1.5, 2.0, 3.0, -1.0] and m.has_sorted_indices
    np.testing.assert_array_equal(m.toarray(), x)
    assert dense_to_csr(np.zeros((2, 3), dtype=np.float32)).nnz == 0


def test_sampling_defaults_unipc_10_steps_and_a_cpu_batch(tiny_run):
    from scdiff.model._generate import SAMPLE_BATCH, Sampling

    model = scdiff.ConditionalDiffusion.load(tiny_run[0])
    how = Sampling(device="cpu").resolve(model.parts)
    assert (how.sampler, how.steps, how.batch_size) == ("unipc", 10, 1024) and SAMPLE_BATCH[False] == 1024
    assert Sampling(sampler="ddim", batch_size=64).resolve(model.parts).steps == 50
    assert Sampling(sampler="ddim", batch_size=64).resolve(model.parts).batch_size == 64
    with pytest.raises(scdiff.InputError, match="batch_size=0 needs"):
        model.sample(5, batch_size=0)
    # the batch only splits the cells: each gets the same noise (up to a matmul's rounding)
    np.testing.assert_allclose(model.sample(50, sampler="ddim", steps=5, batch_size=16).X,
                               model.sample(50, sampler="ddim", steps=5, batch_size=1024).X, rtol=1e-5)


def test_default_length_follows_the_data():
    from scdiff.model import auto_steps

    assert auto_steps(124, 256) == 120  # smaller than a batch: 120 whole passes, no copying
    assert auto_steps(490, 256) == 2000  # 600 epochs would be fewer: the floor
    assert auto_steps(1840, 256) == 4312  # 600 epochs
    assert auto_steps(10**6, 256) == 20000
