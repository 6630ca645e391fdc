"""Data larger than memory: training from a backed .h5ad, and sampling streamed to disk."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import scdiff
from scdiff import InputError
from scdiff.data._backed import BackedCells, RowReader, fit_backed
from scdiff.data._write import write_h5ad_chunks
from tests.conftest import make_counts

KW = dict(condition="cell_type", dose="dose", n_genes=40, width=32, depth=1, space="gene")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backed")
    a = make_counts(n_per_type=200, n_genes=60, seed=3)
    a.write_h5ad(tmp / "csr.h5ad")
    dense = a.copy()
    dense.X = dense.X.toarray()
    dense.write_h5ad(tmp / "dense.h5ad")
    return tmp, a


@pytest.mark.parametrize("name", ["csr.h5ad", "dense.h5ad"])
def test_chunked_fit_equals_the_in_memory_fit(files, name):
    tmp, a = files
    ref = scdiff.ConditionalDiffusion(a, **KW)
    backed = ad.read_h5ad(tmp / name, backed="r")
    pre, _ = fit_backed(backed, n_genes=40, chunk_rows=77)  # chunks that do not divide n
    assert pre.genes == ref.preprocessor.genes and pre.hvg and pre.input_scale == "counts"
    np.testing.assert_allclose(pre.mean, ref.preprocessor.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pre.std, ref.preprocessor.std, rtol=1e-4)
    np.testing.assert_allclose(pre.min_nonzero, ref.preprocessor.min_nonzero, rtol=1e-6)
    model = scdiff.ConditionalDiffusion(backed, **KW)
    assert model.library == ref.library
    assert isinstance(model._data.genes, BackedCells) and len(model._data.genes) == a.n_obs


def _cells(tmp, a, **kw):
    model = scdiff.ConditionalDiffusion(ad.read_h5ad(tmp / "csr.h5ad", backed="r"), **KW)
    return BackedCells(model._data.genes.reader, model.preprocessor, model._data.genes.codes,
                       model._data.genes.doses, block_rows=64, buffer_blocks=3, **kw), model


def test_streamed_batches_are_the_training_data_shuffled(files):
    tmp, a = files
    data, model = _cells(tmp, a)
    ref = scdiff.ConditionalDiffusion(a, **KW)._data.genes
    per_epoch = sum(n // 32 for _, n in data._plan(0, 0))
    batches = [next(it) for it in [data.batches(32, seed=0)] for _ in range(per_epoch)]
    x = torch.cat([b[0] for b in batches])
    # each streamed row is one training row, standardised the same way, with its conditions
    dist = torch.cdist(x, ref.x, compute_mode="donot_use_mm_for_euclid_dist")
    match = dist.argmin(1)
    assert dist.min(1).values.max() < 1e-2  # the two fits differ by float rounding only
    assert len(set(match.tolist())) == len(x)  # no row twice within an epoch
    assert torch.equal(torch.cat([b[1] for b in batches]), ref.cats[match])
    assert not torch.equal(match, torch.sort(match).values)  # shuffled
    # the next epoch visits the blocks in another order
    it = data.batches(32, seed=0, start_step=per_epoch)
    assert not torch.equal(next(it)[0], batches[0][0])


def test_resume_position_and_shards(files):
    tmp, a = files
    data, _ = _cells(tmp, a)
    it = data.batches(32, seed=4)
    seq = [next(it)[0] for _ in range(30)]
    later = data.batches(32, seed=4, start_step=21)  # mid-buffer, mid-epoch and past an epoch
    for k in range(21, 30):
        assert torch.equal(next(later)[0], seq[k])
    s0, s1 = data.shard(0, 2), data.shard(1, 2)
    assert len(s0) + len(s1) == a.n_obs
    assert not set(s0.blocks) & set(s1.blocks)


def test_backed_training_and_streamed_sampling(files, tmp_path):
    tmp, a = files
    model = scdiff.ConditionalDiffusion(ad.read_h5ad(tmp / "csr.h5ad", backed="r"), **KW)
    model.train(steps=40, batch_size=32, progress=False)
    assert model.log[-1]["loss"] < model.log[0]["loss"]
    out = model.sample_to_h5ad(tmp_path / "fake.h5ad", 250, chunk_size=100, guidance=2.0,
                               steps=5, condition={"cell_type": "t1"})
    fake = ad.read_h5ad(out)
    assert fake.shape == (250, 40) and sp.issparse(fake.X)
    assert list(fake.var_names) == model.genes and fake.obs_names.is_unique
    assert (fake.obs["cell_type"] == "t1").all()
    assert list(fake.obs["cell_type"].cat.categories) == ["t0", "t1", "t2"]
    # up to one chunk, the file holds exactly what sample() returns with the same seed
    same = model.sample(100, guidance=2.0, steps=5, condition={"cell_type": "t1"})
    np.testing.assert_array_equal(fake.X[:100].toarray(), same.X)
    assert fake.uns["scdiff"]["chunk_size"] == 100
    joined = ad.concat([a[:, model.genes], fake])
    assert joined.n_obs == a.n_obs + 250


def test_like_streams_the_reference_obs(files, tiny_run, tmp_path):
    path, a = tiny_run
    model = scdiff.ConditionalDiffusion.load(path)
    out = model.sample_to_h5ad(tmp_path / "like.h5ad", like=a.obs, chunk_size=50, steps=3)
    fake = ad.read_h5ad(out)
    assert fake.n_obs == a.n_obs
    assert (fake.obs["cell_type"].astype(str).to_numpy() == a.obs["cell_type"].astype(str).to_numpy()).all()


def test_errors_are_one_line(files, tmp_path):
    tmp, a = files
    csc = a.copy()
    csc.X = sp.csc_matrix(csc.X)
    csc.write_h5ad(tmp_path / "csc.h5ad")
    with pytest.raises(InputError, match="CSR"):
        RowReader(ad.read_h5ad(tmp_path / "csc.h5ad", backed="r"))
    with pytest.raises(InputError, match="no cells"):
        write_h5ad_chunks(tmp_path / "none.h5ad", iter([]))
    with pytest.raises(InputError, match="layer 'absent'"):
        RowReader(ad.read_h5ad(tmp / "csr.h5ad", backed="r"), layer="absent")


def test_cli_trains_backed_and_large_samples_stream(files, tmp_path):
    from typer.testing import CliRunner

    from scdiff.cli import app

    tmp, _ = files
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(tmp / "csr.h5ad"), "-c", "cell_type", "--backed",
                                   "--steps", "20", "--batch-size", "32", "--genes", "40",
                                   "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    model = scdiff.ConditionalDiffusion.load(run)
    # the library decides: more cells than one chunk are written chunk by chunk
    path = model.sample_to_file(tmp_path / "g.h5ad", 40, steps=3, chunk_size=16)
    fake = ad.read_h5ad(path)
    assert fake.n_obs == 40 and fake.uns["scdiff"]["chunk_size"] == 16
    small = ad.read_h5ad(model.sample_to_file(tmp_path / "s.h5ad", 10, steps=3, chunk_size=16))
    assert small.n_obs == 10 and "chunk_size" not in small.uns["scdiff"]
    np.testing.assert_array_equal(small.X, model.sample(10, steps=3).X)
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    res = CliRunner().invoke(app, ["train", str(bad), "--backed", "--out", str(tmp_path / "r3")])
    assert res.exit_code == 1 and "without --backed" in " ".join(res.output.split())
    with pytest.raises(scdiff.InputError, match=r"without backed=True"):
        scdiff.commands.train(bad, backed=True, out=tmp_path / "r4")


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """One data set cut into three files of different sizes (as one per donor)."""
    tmp = tmp_path_factory.mktemp("many")
    a = make_counts(n_per_type=150, n_genes=60, seed=5)
    cuts = [0, 130, 290, a.n_obs]
    paths = []
    for i, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        paths.append(tmp / f"donor{i}.h5ad")
        a[lo:hi].copy().write_h5ad(paths[-1])
    return tmp, paths, a


def test_many_files_read_as_one_data_set(three_files):
    from scdiff.data._backed import BackedFiles, read_backed

    tmp, paths, a = three_files
    files = read_backed(paths)
    assert isinstance(files, BackedFiles) and files.n_obs == a.n_obs
    assert list(files.obs_names) == list(a.obs_names)
    assert read_backed(tmp).n_obs == a.n_obs  # a folder: its .h5ad files in name order
    reader = RowReader(files)
    starts, stops = reader.blocks(64)
    offsets = [0, 130, 290, a.n_obs]
    assert all(not (lo < o < hi) for lo, hi in zip(starts, stops, strict=True) for o in offsets)
    np.testing.assert_array_equal(reader.rows(100, 300).toarray(), a.X[100:300].toarray())  # across files
    pre, _ = fit_backed(files, n_genes=40, chunk_rows=77)
    ref = scdiff.ConditionalDiffusion(a, **KW).preprocessor
    assert pre.genes == ref.genes
    np.testing.assert_allclose(pre.mean, ref.mean, rtol=1e-5, atol=1e-6)


def test_cell_names_repeated_across_files_get_the_file_name(tmp_path):
    from scdiff.data._backed import read_backed

    a = make_counts(n_per_type=20, n_genes=30, seed=1)
    for i in range(2):  # two donors, the same barcodes
        a.write_h5ad(tmp_path / f"donor{i}.h5ad")
    files = read_backed(tmp_path)
    assert files.n_obs == 2 * a.n_obs and files.obs_names.is_unique
    assert files.obs_names[0] == f"{a.obs_names[0]}-donor0"
    assert files.obs_names[-1] == f"{a.obs_names[-1]}-donor1"


def test_training_on_many_files_mixes_them_in_each_buffer(three_files):
    from scdiff.data._backed import read_backed

    _, paths, a = three_files
    model = scdiff.ConditionalDiffusion(read_backed(paths), **KW)
    cells = model._data.genes
    data = BackedCells(cells.reader, model.preprocessor, cells.codes, cells.doses,
                       block_rows=32, buffer_blocks=6)
    buffers = [blocks for blocks, _ in data._plan(seed=0, epoch=0)]
    file_of = np.searchsorted([130, 290, a.n_obs], data.starts, side="right")
    assert max(len(set(file_of[b])) for b in buffers) >= 2  # a buffer holds several files' cells
    model.train(steps=20, batch_size=32, progress=False)
    assert model.sample(10, steps=2).n_obs == 10


def test_many_files_from_the_command_line(three_files, tmp_path):
    from typer.testing import CliRunner

    from scdiff.cli import app

    tmp, paths, a = three_files
    res = CliRunner().invoke(app, ["train", *map(str, paths), "-c", "cell_type", "--steps", "5",
                                   "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert scdiff.ConditionalDiffusion.load(tmp_path / "run").info()["genes_in_input"] == 60
    other = make_counts(n_per_type=10, n_genes=50, seed=6)
    other.write_h5ad(tmp_path / "other.h5ad")
    res = CliRunner().invoke(app, ["train", str(paths[0]), str(tmp_path / "other.h5ad"), "-c", "cell_type",
                                   "--out", str(tmp_path / "r2")])
    assert res.exit_code == 1 and "holds other genes than" in res.output


def test_files_stored_dense_and_sparse_read_together(three_files, tmp_path):
    from scdiff.data._backed import read_backed

    _, paths, a = three_files
    dense = a[:130].copy()
    dense.X = dense.X.toarray()
    dense.write_h5ad(tmp_path / "dense.h5ad")
    reader = RowReader(read_backed([tmp_path / "dense.h5ad", paths[1]]))
    block = reader.rows(100, 200)  # 30 dense rows, then 70 sparse ones
    np.testing.assert_array_equal(block.toarray(), a.X[100:200].toarray())


def test_train_command_takes_a_list_of_files_and_refuses_an_empty_one(three_files, tmp_path):
    from scdiff import commands

    _, paths, _ = three_files
    model = commands.train(paths, condition="cell_type", out=tmp_path / "run", steps=3, progress=False)
    assert model.info()["genes"] > 0 and (tmp_path / "run" / "config.json").exists()
    with pytest.raises(scdiff.InputError, match="no file given in data"):
        commands.train([], condition="cell_type", out=tmp_path / "none")
    assert not (tmp_path / "none").exists()
