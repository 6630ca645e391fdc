"""From the network's space to expression: generated values back through the space and the
preprocessing, to log-normalised expression and integer counts (CSR, block by block).

- gene and PCA spaces: standardised modelled genes (a PCA decoded first, with each gene's
  residual spread) -> log-normalised values with exact zeros -> Poisson counts around them;
- a latent space: the decoder's negative-binomial counts of every gene, drawn first; the
  log-normalised values are those counts normalised, as a real cell's would be.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scdiff.data import _library, log_normalize
from scdiff.model._setup import ModelParts

#: What the layers of a generated AnnData hold.
LAYERS = {
    "counts": "integer counts: Poisson around the generated expression at a library size drawn "
              "per cell from the training cells of its condition",
    "log1p": "log1p of counts per 10k (the generated expression), when X holds the counts",
}
#: The counts layer of a latent-space model.
NB_COUNTS = ("integer counts: negative binomial draws from the autoencoder's decoder at each cell's "
             "library size, generated with its latent; X is their log1p CP10k")

#: Rows handled at a time from the network's space to expression (a block stays in cache;
#: whole-matrix passes cost several times as much on 1M cells).
POST_ROWS = 1024


def gene_expression(parts: ModelParts, z: np.ndarray, lib: np.ndarray | None, zeros: str,
                    rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """(log-normalised expression, counts or None) of generated standardised modelled genes
    ``z`` (gene space; a PCA space's decoded), as CSR: ``POST_ROWS`` rows at a time back
    through the preprocessing (in place), the rounding below one read on the non-zeros only
    (its uniforms in row-major order, as for the whole matrix), then Poisson counts."""
    pieces = []
    for a in range(0, z.shape[0], POST_ROWS):
        x = parts.preprocessor.inverse(z[a:a + POST_ROWS], zeros=zeros != "none", inplace=True)
        pieces.append(_library.dense_to_csr(x))
    X = sp.vstack(pieces, format="csr") if pieces else sp.csr_matrix(z.shape, dtype=np.float32)
    if zeros == "cell":
        X = _library.round_below_one_read(X, lib, rng, copy=False,
                                          target_sum=parts.preprocessor.target_sum)
    return X, (_library.counts_from_log(X, lib, rng) if lib is not None else None)


def nb_counts(mean: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Negative-binomial counts of mean ``mean`` (cells x genes) and inverse dispersion
    ``theta`` (per gene), as gamma-Poisson draws; float32 CSR."""
    rate = rng.gamma(np.broadcast_to(theta, mean.shape), 1.0) * (mean / theta)
    return _library.dense_to_csr(rng.poisson(np.minimum(rate, _library.MAX_RATE)).astype(np.float32))


def count_space_expression(parts: ModelParts, latent: np.ndarray, lib: np.ndarray,
                           rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(log-normalised expression, counts) of every gene of cells generated in a latent
    space, ``POST_ROWS`` at a time: the decoder's negative binomial at the drawn library
    sizes, normalised by the cells' own totals (the data were counts of every gene) or by
    those library sizes (the data's ``n_counts`` covered more genes than they hold)."""
    space = parts.space
    latent, lib = space.split(latent, lib)  # the diffused library sizes, where the space has them
    theta = space.theta
    Xs, Cs = [], []
    for a in range(0, latent.shape[0], POST_ROWS):
        b = slice(a, a + POST_ROWS)
        counts = nb_counts(space.expected_counts(latent[b], lib[b]).astype(np.float64), theta, rng)
        if space.normalise_by_total:
            x = log_normalize(counts, target_sum=space.target_sum)
        else:
            x = counts.copy()
            x.data = np.log1p(x.data * (space.target_sum / lib[b][_library.csr_rows(x.indptr)])
                              ).astype(np.float32)
        Xs.append(sp.csr_matrix(x, dtype=np.float32))
        Cs.append(counts)
    shape = (latent.shape[0], len(space.genes))
    if not Xs:
        return sp.csr_matrix(shape, dtype=np.float32), sp.csr_matrix(shape, dtype=np.float32)
    return sp.vstack(Xs, format="csr"), sp.vstack(Cs, format="csr")


def expression(parts: ModelParts, out: np.ndarray, lib: np.ndarray | None, zeros: str,
               rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
    """(log-normalised expression, counts or None) of cells generated in the network's
    space ``out`` (float32; overwritten in gene space)."""
    if parts.space.kind == "latent":
        return count_space_expression(parts, out, lib, rng)
    if parts.space.kind == "pca":
        out = np.concatenate([parts.space.decode(out[a:a + POST_ROWS], rng)
                              for a in range(0, len(out), POST_ROWS)] or [out[:, :0]])
    return gene_expression(parts, out, lib, zeros, rng)
