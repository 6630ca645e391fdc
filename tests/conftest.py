"""Shared fixtures: tiny data that trains in seconds."""

from __future__ import annotations

import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

torch.set_num_threads(2)
# the tests' results must not depend on how busy the machine is: a fixed thread count
# (tests/test_threads.py exercises "auto" itself)
os.environ.setdefault("SCDIFF_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))


def make_counts(n_per_type: int = 40, n_genes: int = 30, n_types: int = 3, seed: int = 0,
                sparse: bool = True) -> ad.AnnData:
    """Poisson counts with a distinct mean profile per cell type, and a dose column."""
    rng = np.random.default_rng(seed)
    profiles = rng.gamma(1.0, 2.0, size=(n_types, n_genes))
    types = np.repeat(np.arange(n_types), n_per_type)
    X = rng.poisson(profiles[types]).astype(np.float32)
    obs = pd.DataFrame({
        "cell_type": pd.Categorical([f"t{i}" for i in types]),
        "dose": rng.choice([0.0, 1.0, 10.0], size=len(types)),
    }, index=[f"c{i}" for i in range(len(types))])
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])
    return ad.AnnData(X=sp.csr_matrix(X) if sparse else X, obs=obs, var=var)


@pytest.fixture
def counts_adata() -> ad.AnnData:
    return make_counts()


@pytest.fixture
def log_adata() -> ad.AnnData:
    a = make_counts(seed=1)
    from scdiff.data import log_normalize

    a.X = log_normalize(a.X)
    return a


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A trained, saved tiny model (shared by the sampling/CLI tests)."""
    import scdiff

    a = make_counts(seed=2)
    # gene space: the sampling options these tests exercise (zeros, clipping per gene) are its own
    model = scdiff.ConditionalDiffusion(a, condition="cell_type", dose="dose", width=32, depth=1,
                                        space="gene")
    model.train(steps=30, batch_size=32, progress=False)
    path = tmp_path_factory.mktemp("runs") / "tiny"
    model.save(path)
    return path, a
