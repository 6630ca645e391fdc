"""Expression preprocessing and its exact inverse on output.

counts --> CP10k + log1p --> highly variable genes --> per-gene standardisation.
Everything fitted is recorded in a JSON-able config, so a run reloads without the
training data and maps generated values back to log-normalised expression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scdiff._errors import InputError, arg
from scdiff.data._validate import Scale, clip_negative, detect_scale

_MIN_STD = 1e-2  # floor for near-constant genes, so scaling never divides by ~0


def log_normalize(X, target_sum: float = 1e4):
    """log1p of counts per ``target_sum`` (CP10k), keeping sparsity."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32, copy=True)
        lib = np.asarray(X.sum(axis=1)).ravel()
        lib[lib == 0] = 1.0
        X = sp.diags((target_sum / lib).astype(np.float32)) @ X
        X.data = np.log1p(X.data)
        return X.tocsr()
    X = np.asarray(X, dtype=np.float32)
    lib = X.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    return np.log1p(X * (target_sum / lib)).astype(np.float32)


def as_log_space(adata: ad.AnnData, *, source: str = "data") -> ad.AnnData:
    """Counts become log1p(CP10k); log-normalised data pass through; scaled data are refused.

    The space the metrics compare in, whatever file the user brings.
    """
    if detect_scale(adata.X, source=source) == "counts":
        adata = adata.copy()
        adata.X = log_normalize(adata.X)
    return adata


def _gene_moments(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and standard deviation without densifying a sparse matrix."""
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel().astype(np.float64)
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel().astype(np.float64)
        var = np.maximum(sq - mean**2, 0.0)
    else:
        X64 = np.asarray(X, dtype=np.float64)
        mean, var = X64.mean(axis=0), X64.var(axis=0)
    return mean, np.sqrt(var)


def min_positive(X) -> np.ndarray:
    """Per-gene smallest positive value (inf for a gene never expressed), float64."""
    if sp.issparse(X):
        X = sp.csc_matrix(X)
        positive = np.where(X.data > 0, X.data, np.inf).astype(np.float64)
        out = np.full(X.shape[1], np.inf)
        stored = np.diff(X.indptr) > 0  # reduceat needs the empty columns left out
        if stored.any():
            out[stored] = np.minimum.reduceat(positive, X.indptr[:-1][stored])
        return out
    X = np.asarray(X, dtype=np.float64)
    return np.where(X > 0, X, np.inf).min(axis=0)


def gene_max(X) -> np.ndarray:
    """Per-gene largest value (0 for a gene never expressed), float64."""
    if sp.issparse(X):
        return np.asarray(sp.csc_matrix(X).max(axis=0).toarray(), dtype=np.float64).ravel()
    return np.asarray(X, dtype=np.float64).max(axis=0)


def _fill_unexpressed(mins: np.ndarray) -> np.ndarray:
    """Genes never expressed (inf) get the median smallest value of the others, as float32."""
    out = np.asarray(mins, dtype=np.float64).copy()
    out[~np.isfinite(out)] = np.nan
    fill = np.nanmedian(out) if np.isfinite(out).any() else 0.0
    return np.where(np.isnan(out), fill, out).astype(np.float32)


def select_hvg(X, var_names: pd.Index, n_top: int) -> np.ndarray:
    """Indices (in original order) of the ``n_top`` most variable genes of log data.

    Seurat-style: dispersion (var/mean) normalised within 20 bins of mean expression.
    """
    return hvg_from_moments(*_gene_moments(X), n_top)


def hvg_from_moments(mean: np.ndarray, std: np.ndarray, n_top: int) -> np.ndarray:
    """:func:`select_hvg` from each gene's mean and standard deviation of log data."""
    disp = np.where(mean > 0, std**2 / np.maximum(mean, 1e-12), 0.0)
    log_disp = np.log(np.maximum(disp, 1e-12))
    bins = pd.cut(mean, bins=20, labels=False, duplicates="drop")
    frame = pd.DataFrame({"d": log_disp, "bin": bins})
    grp = frame.groupby("bin")["d"]
    norm = (frame["d"] - grp.transform("mean")) / grp.transform("std").replace(0, 1).fillna(1)
    # np.where, not an in-place write: under pandas' copy-on-write (pandas 3) to_numpy()
    # returns a read-only view
    norm = np.where(mean > 0, norm.fillna(0).to_numpy(), -np.inf)
    top = np.argsort(-norm, kind="stable")[:n_top]
    return np.sort(top)


@dataclass
class Preprocessor:
    """What was done to the input, fitted once at training time.

    Attributes
    ----------
    input_scale
        ``"counts"`` or ``"log"``: what the user gave; ``"table"``: a plain table's encoded
        columns (:class:`scdiff.data.TableCodec`), standardised and nothing else.
    layer
        The layer read (``None`` for ``.X``).
    genes
        The modelled genes, in order.
    mean, std
        Per-gene standardisation of log-normalised expression.
    min_nonzero, max
        Per-gene smallest non-zero and largest log-normalised training value (runs saved
        before ``max`` was recorded have it empty).
    """

    input_scale: Scale
    layer: str | None
    genes: list[str]
    mean: list[float]
    std: list[float]
    min_nonzero: list[float] = field(default_factory=list)
    n_genes_input: int = 0
    target_sum: float = 1e4
    hvg: bool = False
    max: list[float] = field(default_factory=list)
    clip_negative: bool = False
    min: list[float] = field(default_factory=list)

    # -- fitting ------------------------------------------------------------------------------
    @classmethod
    def fit(cls, adata: ad.AnnData, *, layer: str | None = None, n_genes: int = 2000,
            clip_negative: bool = False) -> Preprocessor:
        """Detect the input scale, choose genes and fit the per-gene scaling.

        ``clip_negative`` sets negative values to 0 first (the small negatives smoothing or
        imputation leaves; scaled data are refused still).
        """
        return cls._fit(adata, layer, n_genes, clip_negative)[0]

    @classmethod
    def fit_transform(cls, adata: ad.AnnData, *, layer: str | None = None, n_genes: int = 2000,
                      clip_negative: bool = False) -> tuple[Preprocessor, np.ndarray]:
        """:meth:`fit`, and the standardised training matrix, normalising the data once."""
        pre, log_x = cls._fit(adata, layer, n_genes, clip_negative)
        return pre, pre.transform(log_x)

    @classmethod
    def _fit(cls, adata: ad.AnnData, layer: str | None, n_genes: int, clip: bool):
        X, scale = read_expression(adata, layer, clip=clip)
        if scale == "table":  # every encoded column, standardised: no normalising, no selection
            X = np.asarray(X, dtype=np.float32)
            mean, std = _gene_moments(X)
            pre = cls(input_scale="table", layer=None, genes=[str(g) for g in adata.var_names],
                      mean=mean.astype(np.float32).tolist(),
                      std=np.maximum(std, _MIN_STD).astype(np.float32).tolist(),
                      n_genes_input=int(adata.n_vars), max=X.max(axis=0).tolist(),
                      min=X.min(axis=0).tolist())
            return pre, X
        logX = log_normalize(X) if scale == "counts" else X
        mean, std = _gene_moments(logX)
        pre = cls.from_moments(input_scale=scale, layer=layer, var_names=adata.var_names, mean=mean,
                               std=std, min_positive=min_positive(logX), maximum=gene_max(logX),
                               n_genes=n_genes, clip_negative=clip)
        idx = adata.var_names.get_indexer(pre.genes) if pre.hvg else slice(None)
        return pre, logX[:, idx]

    @classmethod
    def from_moments(cls, *, input_scale: Scale, layer: str | None, var_names: pd.Index,
                     mean: np.ndarray, std: np.ndarray, min_positive: np.ndarray,
                     maximum: np.ndarray, n_genes: int, clip_negative: bool = False) -> Preprocessor:
        """The fit from each input gene's moments of log data (in memory or streamed alike):
        the ``n_genes`` most variable genes, their scaling and smallest values."""
        if not np.any(np.asarray(maximum) > 0):
            raise InputError(f"the expression holds only zeros: there is nothing to learn; check the "
                             f"data, or give {arg('layer')} the layer that holds it.")
        hvg = len(var_names) > n_genes
        idx = hvg_from_moments(mean, std, n_genes) if hvg else np.arange(len(var_names))
        return cls(
            min_nonzero=_fill_unexpressed(min_positive[idx]).tolist(),
            input_scale=input_scale,
            layer=layer,
            genes=[str(g) for g in var_names[idx]],
            mean=mean[idx].astype(np.float32).tolist(),
            std=np.maximum(std[idx], _MIN_STD).astype(np.float32).tolist(),
            n_genes_input=int(len(var_names)),
            hvg=bool(hvg),
            max=np.asarray(maximum, dtype=np.float64)[idx].astype(np.float32).tolist(),
            clip_negative=bool(clip_negative),
        )

    # -- config -------------------------------------------------------------------------------
    def to_config(self) -> dict:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> Preprocessor:
        return cls(**config)

    # -- forward and inverse ------------------------------------------------------------------
    def log_expression(self, adata: ad.AnnData):
        """The modelled genes of ``adata`` as log-normalised expression (sparse kept sparse)."""
        X, scale = read_expression(adata, self.layer, clip=self.clip_negative)
        missing = pd.Index(self.genes).difference(adata.var_names)
        if len(missing):
            raise InputError(
                f"{len(missing)} of the model's {len(self.genes)} genes are not in the data "
                f"(e.g. {list(missing[:3])}); give data with the training genes."
            )
        if scale == "counts":
            # normalise on all genes first, as at training time, then select
            X = log_normalize(X)
        return X[:, adata.var_names.get_indexer(self.genes)]

    def transform(self, log_x) -> np.ndarray:
        """Log-normalised expression of the modelled genes -> standardised float32 array."""
        dense = log_x.toarray() if sp.issparse(log_x) else np.asarray(log_x)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((dense - mean) / std).astype(np.float32)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-gene (lowest, highest) value a cell can take, in the standardised space: zero
        expression and the largest training value (for runs without it, all reads of a cell
        in one gene, ``log1p(target_sum)``)."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if self.input_scale == "table":  # the training range of each encoded column
            return ((np.asarray(self.min, dtype=np.float32) - mean) / std,
                    (np.asarray(self.max, dtype=np.float32) - mean) / std)
        top = (np.asarray(self.max, dtype=np.float32) if self.max
               else np.full_like(mean, np.log1p(self.target_sum)))
        return (0.0 - mean) / std, (top - mean) / std

    def inverse(self, z: np.ndarray, *, zeros: bool = True, inplace: bool = False) -> np.ndarray:
        """Standardised values -> log-normalised expression.

        Negative values become zero. With ``zeros``, values below half the smallest
        non-zero value the gene took in training become exact zeros too: real data
        cannot hold them (one read is the smallest non-zero), and the continuous
        diffusion otherwise smears the zeros into small positive values. ``inplace``
        overwrites a float32 ``z`` (no new array: the same values).
        """
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if inplace:
            x = np.multiply(z, std, out=z)
        else:
            x = np.asarray(z, dtype=np.float32) * std
        x += mean
        if self.input_scale == "table":  # a table's encoded columns: no zeros to restore
            return x
        np.maximum(x, 0.0, out=x)
        if zeros and self.min_nonzero:
            x[x < 0.5 * np.asarray(self.min_nonzero, dtype=np.float32)] = 0.0
        return x


def read_expression(adata: ad.AnnData, layer: str | None, *, clip: bool = False):
    """(``X`` or the layer, its scale): negatives set to 0 with ``clip``, refused otherwise."""
    X = expression(adata, layer)
    if clip:
        X = clip_negative(X)
    marked = adata.uns.get("scdiff_input") if "scdiff_input" in adata.uns else None
    if marked == "tabular":  # a table encoded by TableCodec: finite by construction
        return X, "table"
    table = marked == "table"
    return X, detect_scale(X, source=f"layer {layer!r}" if layer else "X", table=table)


def expression(adata: ad.AnnData, layer: str | None):
    """``adata.X`` or ``adata.layers[layer]``, with a clear error for an absent layer."""
    if layer is None:
        if adata.X is None:
            raise InputError(f"the AnnData has no X; pass {arg('layer')} with the layer to use.")
        return adata.X
    if layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found in adata.layers; the layers there are {list(adata.layers)}."
        )
    return adata.layers[layer]
