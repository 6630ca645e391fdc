"""Write the small example data sets bundled with scdiff (deterministic, seed 0).

Run from anywhere; the files land next to this script::

    python data_examples/make_examples.py

- ``pbmc_train.h5ad`` / ``pbmc_test.h5ad``: scanpy's offline PBMC 68k reduced
  data (700 cells x 765 genes), log1p CP10k, split 70/30 stratified by cell type.
- ``simulated.h5ad``: ``scdiff.datasets.simulate`` with both splits (obs ``split``).
- ``simulated_train.h5ad`` / ``simulated_test.h5ad``: the same cells, split.
- ``immune_wide_train.h5ad`` / ``immune_wide_test.h5ad``: a wide real panel (many more
  genes than cells, few cells per type): the 559 immune cells x 32,786 genes of
  celltypist's bundled sample (``celltypist/data/samples/sample_cell_by_gene.csv``,
  UMI counts; celltypist is MIT-licensed), genes seen in at least 10 cells,
  clustered (k-means, k = 8, on 20 PCs of 2,000 HVGs of log1p CP10k) into obs
  ``cluster``, split 70/30 stratified. Counts in ``X``. Made only when the CSV is
  given (``pip download --no-deps celltypist==1.7.1`` and unzip the wheel)::

      python data_examples/make_examples.py --celltypist-sample PATH/sample_cell_by_gene.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from scdiff.datasets import simulate

HERE = Path(__file__).resolve().parent
SEED = 0
PBMC_OBS = ["n_counts", "n_genes", "percent_mito", "S_score", "G2M_score", "phase"]
SIMULATION = {"n_cells": 3300, "n_genes": 500, "n_cell_types": 3, "seed": SEED}


def pbmc_splits() -> tuple[ad.AnnData, ad.AnnData]:
    """PBMC 68k reduced as log1p CP10k (its ``.raw``), with a counts layer, split 70/30."""
    src = sc.datasets.pbmc68k_reduced()
    x = sp.csr_matrix(src.raw.X, dtype=np.float32)
    obs = src.obs[PBMC_OBS].copy()
    obs.insert(0, "cell_type", pd.Categorical(src.obs["bulk_labels"]))
    # .raw holds log1p(counts / n_counts * 1e4) rounded to 3 decimals, where
    # n_counts is the total over all genes; inverting it recovers the counts
    # of these 765 genes to within 0.1.
    counts = x.copy()
    per_entry_total = np.repeat(obs["n_counts"].to_numpy(), np.diff(counts.indptr))
    counts.data = np.round(np.expm1(counts.data) * per_entry_total / 1e4)
    counts.eliminate_zeros()
    full = ad.AnnData(
        X=x,
        obs=obs,
        var=pd.DataFrame(index=src.raw.var_names.copy()),
        layers={"counts": counts.astype(np.float32)},
    )
    train_names, test_names = train_test_split(
        full.obs_names.to_numpy(),
        test_size=0.3,
        stratify=full.obs["cell_type"].to_numpy(),
        random_state=SEED,
    )
    # isin keeps the source's cell order within each split.
    train = keep_categories(full[full.obs_names.isin(train_names)].copy(), full)
    test = keep_categories(full[full.obs_names.isin(test_names)].copy(), full)
    return train, test


def immune_wide_splits(csv: Path) -> tuple[ad.AnnData, ad.AnnData]:
    """celltypist's sample as counts, genes in >= 10 cells, k-means clusters, split 70/30."""
    import scanpy as sc
    from sklearn.cluster import KMeans

    table = pd.read_csv(csv, index_col=0)
    full = ad.AnnData(sp.csr_matrix(table.to_numpy(np.float32)),
                      obs=pd.DataFrame(index=table.index.astype(str)),
                      var=pd.DataFrame(index=table.columns.astype(str)))
    full.var_names_make_unique()
    sc.pp.filter_genes(full, min_cells=3)
    logged = full.copy()
    sc.pp.normalize_total(logged, target_sum=1e4)
    sc.pp.log1p(logged)
    sc.pp.highly_variable_genes(logged, n_top_genes=2000)
    logged = logged[:, logged.var["highly_variable"]].copy()
    sc.pp.scale(logged, max_value=10)
    sc.tl.pca(logged, n_comps=20, random_state=SEED)
    labels = KMeans(8, n_init=10, random_state=SEED).fit_predict(logged.obsm["X_pca"])
    # clusters numbered by size, largest first
    order = {lab: i for i, lab in enumerate(pd.Series(labels).value_counts().index)}
    full.obs["cluster"] = pd.Categorical([f"cluster_{order[lab]}" for lab in labels],
                                         categories=[f"cluster_{i}" for i in range(8)])
    # clusters from genes in >= 3 cells; the files keep genes in >= 10 (smaller files)
    sc.pp.filter_genes(full, min_cells=10)
    train_names, test_names = train_test_split(
        full.obs_names.to_numpy(), test_size=0.3, stratify=full.obs["cluster"].to_numpy(),
        random_state=SEED)
    train = keep_categories(full[full.obs_names.isin(train_names)].copy(), full)
    test = keep_categories(full[full.obs_names.isin(test_names)].copy(), full)
    return train, test


def keep_categories(part: ad.AnnData, whole: ad.AnnData) -> ad.AnnData:
    """Give ``part`` the categories of ``whole``: subsetting drops unused ones."""
    for col, values in whole.obs.items():
        if isinstance(values.dtype, pd.CategoricalDtype):
            part.obs[col] = part.obs[col].cat.set_categories(values.cat.categories)
    return part


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the bundled example data sets.")
    parser.add_argument("--celltypist-sample", type=Path, default=None,
                        help="celltypist's sample_cell_by_gene.csv: also write immune_wide_*.h5ad")
    args = parser.parse_args()
    if args.celltypist_sample is not None:
        for split, part in zip(("train", "test"), immune_wide_splits(args.celltypist_sample), strict=True):
            part.write_h5ad(HERE / f"immune_wide_{split}.h5ad", compression="gzip", compression_opts=9)
    train, test = pbmc_splits()
    train.write_h5ad(HERE / "pbmc_train.h5ad", compression="gzip", compression_opts=9)
    test.write_h5ad(HERE / "pbmc_test.h5ad", compression="gzip", compression_opts=9)

    sim = simulate(**SIMULATION)
    sim.write_h5ad(HERE / "simulated.h5ad", compression="gzip", compression_opts=9)
    for split in ("train", "test"):
        part = keep_categories(sim[sim.obs["split"] == split].copy(), sim)
        part.write_h5ad(HERE / f"simulated_{split}.h5ad", compression="gzip", compression_opts=9)

    for path in sorted(HERE.glob("*.h5ad")):
        shape = ad.read_h5ad(path, backed="r").shape
        print(f"{path.name:24s} {shape[0]:5d} x {shape[1]:4d}  {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
