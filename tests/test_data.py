"""Reading, validating and preprocessing input; encoding conditions."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiff import InputError
from scdiff.data import ConditionEncoder, Preprocessor, detect_scale, log_normalize, read_input, select_hvg
from scdiff.data._io import atomic_write, read_obs, write_h5ad


def test_detect_scale_counts_log_and_refusals():
    assert detect_scale(np.array([[0, 2], [3, 4]], dtype=float)) == "counts"
    assert detect_scale(sp.csr_matrix(np.log1p(np.array([[0, 2.5], [3, 4]])))) == "log"
    with pytest.raises(InputError, match="z-scored.*raw"):
        detect_scale(np.array([[-1.2, 0.3]]))
    with pytest.raises(InputError, match="NaN"):
        detect_scale(np.array([[np.nan, 1.0]]))
    with pytest.raises(InputError, match="log1p"):
        detect_scale(np.array([[0.5, 1000.5]]))


def test_log_normalize_dense_and_sparse_agree():
    X = np.array([[1, 0, 3], [0, 0, 0], [2, 2, 0]], dtype=np.float32)
    dense = log_normalize(X)
    assert np.allclose(dense[0], np.log1p(X[0] / 4 * 1e4))
    assert np.allclose(log_normalize(sp.csr_matrix(X)).toarray(), dense)
    assert np.all(dense[1] == 0)


def test_preprocessor_counts_input_roundtrip(counts_adata):
    pre = Preprocessor.fit(counts_adata)
    assert pre.input_scale == "counts" and not pre.hvg and len(pre.genes) == counts_adata.n_vars
    logx = pre.log_expression(counts_adata)
    z = pre.transform(logx)
    assert np.allclose(z.mean(0), 0, atol=1e-4)
    back = pre.inverse(z, zeros=False)
    assert np.allclose(back, logx.toarray(), atol=1e-4)
    again = Preprocessor.from_config(pre.to_config())
    assert again == pre


def test_inverse_restores_exact_zeros(log_adata):
    pre = Preprocessor.fit(log_adata)
    z = pre.transform(pre.log_expression(log_adata))
    noisy = z + np.random.default_rng(0).normal(0, 0.05, z.shape).astype(np.float32)
    x = pre.inverse(noisy)
    real_zero = (log_adata.X.toarray() == 0).mean()
    assert abs((x == 0).mean() - real_zero) < 0.05
    assert (pre.inverse(noisy, zeros=False) == 0).mean() < real_zero - 0.1


def test_hvg_selection_keeps_variable_genes(counts_adata):
    a = counts_adata.copy()
    X = a.X.toarray()
    X[:, 0] = np.where(np.arange(a.n_obs) % 2, 50, 0)  # very variable gene
    a.X = sp.csr_matrix(X)
    pre = Preprocessor.fit(a, n_genes=5)
    assert pre.hvg and len(pre.genes) == 5 and "g0" in pre.genes
    idx = select_hvg(log_normalize(a.X), a.var_names, 5)
    assert list(idx) == sorted(idx)


def test_hvg_selection_under_copy_on_write(counts_adata):
    # pandas 3 makes copy-on-write the only mode: to_numpy() views are read-only there
    # (found on a GPU machine with pandas 3.0.6: the wide data set failed to preprocess)
    X = log_normalize(counts_adata.X).toarray()
    X[:, 1] = 0  # a gene never expressed must rank last
    expected = select_hvg(X, counts_adata.var_names, 5)
    with pd.option_context("mode.copy_on_write", True):
        assert list(select_hvg(X, counts_adata.var_names, 5)) == list(expected)
    assert 1 not in expected


def test_missing_layer_and_genes(counts_adata):
    with pytest.raises(InputError, match="layer 'counts' not found"):
        Preprocessor.fit(counts_adata, layer="counts")
    pre = Preprocessor.fit(counts_adata)
    with pytest.raises(InputError, match="genes are not in the data"):
        pre.log_expression(counts_adata[:, :10])


def test_condition_encoder_codes_doses_and_errors(counts_adata):
    obs = counts_adata.obs
    enc = ConditionEncoder.fit(obs, "cell_type", "dose")
    codes, doses = enc.encode(obs)
    assert enc.categories == [["t0", "t1", "t2"]] and enc.n_categories == [3]
    assert codes[:, 0].tolist() == obs.cell_type.cat.codes.tolist()
    assert np.allclose(doses[:, 0], np.log1p(obs.dose) / np.log1p(10.0))
    assert ConditionEncoder.from_config(enc.to_config()) == enc
    with pytest.raises(InputError, match="not found in adata.obs; the columns there are: cell_type, dose"):
        ConditionEncoder.fit(obs, "celltype", None)
    bad = obs.assign(cell_type=obs.cell_type.astype(object).where(obs.index != "c3", None))
    with pytest.raises(InputError, match="missing values"):
        ConditionEncoder.fit(bad, "cell_type", None)
    with pytest.raises(InputError, match="non-numeric"):
        ConditionEncoder.fit(obs.assign(dose="high"), None, "dose")
    with pytest.raises(InputError, match="negative"):  # doses trained >= 0 stay >= 0
        enc.encode(pd.DataFrame({"cell_type": ["t0"], "dose": [-1.0]}))
    one = obs.assign(cell_type=obs.cell_type.astype(str).where(obs.index != "c0", "solo"))
    with pytest.raises(InputError, match="single cell \\('solo'\\)"):
        ConditionEncoder.fit(one, "cell_type", None)
    with pytest.raises(InputError, match="single category"):
        ConditionEncoder.fit(obs.assign(cell_type="B"), "cell_type", None)
    with pytest.raises(InputError, match="valid values of 'cell_type' are: t0, t1, t2"):
        enc.encode(pd.DataFrame({"cell_type": ["t9"], "dose": [1.0]}))
    with pytest.warns(UserWarning, match=r"outside the training range \[0, 10\]"):
        enc.encode(pd.DataFrame({"cell_type": ["t0"], "dose": [50.0]}))


def test_training_proportions_are_exact(counts_adata):
    enc = ConditionEncoder.fit(counts_adata.obs, "cell_type", None)
    frame = enc.training_obs(300, np.random.default_rng(0))
    assert frame.cell_type.value_counts().to_dict() == {"t0": 100, "t1": 100, "t2": 100}
    req = enc.request_obs(7, {"cell_type": "t1"}, None, np.random.default_rng(0))
    assert (req.cell_type == "t1").all() and len(req) == 7


def test_read_input_formats_and_errors(tmp_path, counts_adata):
    h5 = tmp_path / "a.h5ad"
    counts_adata.write_h5ad(h5)
    assert read_input(h5).shape == counts_adata.shape
    assert list(read_obs(h5).columns) == ["cell_type", "dose"]
    table = counts_adata.to_df().assign(cell_type=counts_adata.obs.cell_type.astype(str).values)
    table.to_csv(tmp_path / "a.csv", index=False)
    t = read_input(tmp_path / "a.csv", conditions=["cell_type"])
    assert t.n_vars == counts_adata.n_vars and "cell_type" in t.obs
    with pytest.raises(InputError, match="does not exist"):
        read_input(tmp_path / "nope.h5ad")
    with pytest.raises(InputError, match="is a directory"):
        read_input(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError, match="extension"):
        read_input(tmp_path / "x.txt")
    (tmp_path / "bad.h5ad").write_bytes(h5.read_bytes()[:500])
    with pytest.raises(InputError, match="could not be read"):
        read_input(tmp_path / "bad.h5ad")


def test_writes_are_atomic_and_refuse_overwrite(tmp_path, counts_adata):
    out = tmp_path / "o.h5ad"
    write_h5ad(counts_adata, out)
    before = out.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_h5ad(counts_adata, out)

    def failing(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match=r"could not write .*o.h5ad \(No space left on device\)"):
        atomic_write(out, failing)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.h5ad"]


def test_min_nonzero_sparse_matches_dense_with_empty_genes():
    from scdiff.data._preprocess import _fill_unexpressed, min_positive

    X = np.array([[0, 2.0, 0, 0.5], [3.0, 0, 0, 1.5], [1.0, 0, 0, 0]], dtype=np.float32)
    dense, sparse = min_positive(X), min_positive(sp.csr_matrix(X))
    assert np.array_equal(dense, sparse) and dense.tolist() == [1.0, 2.0, np.inf, 0.5]
    assert _fill_unexpressed(dense).tolist() == [1.0, 2.0, 1.0, 0.5]  # the empty gene: the median


def test_out_dir_check_refuses_files_and_full_folders(tmp_path):
    from scdiff.data._io import check_out_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        check_out_dir(tmp_path / "f", overwrite=True)
    with pytest.raises(InputError, match="already exists and is not empty; pass --resume"):
        check_out_dir(tmp_path, overwrite=False, hint="pass --resume")
    assert check_out_dir(tmp_path, overwrite=True) == tmp_path
    assert check_out_dir(tmp_path / "new", overwrite=False) == tmp_path / "new"
