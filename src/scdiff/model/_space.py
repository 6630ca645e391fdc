"""A model's space: which one (``space="auto"`` decides from the data), building it, fitting
it (a PCA at set-up, the autoencoder as the first phase of training), and the training
cells moved into it for the diffusion.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from scdiff._errors import InputError, arg
from scdiff.data import Preprocessor
from scdiff.data._backed import BackedCells
from scdiff.space import SPACES, CountSpace, GeneSpace, PCASpace, Space
from scdiff.train import CellTensors
from scdiff.train._data import PosteriorCells

#: What ``space`` may be: a space of :data:`scdiff.space.SPACES`, or ``auto``.
SPACE_CHOICES = ("auto", *SPACES)
#: The autoencoder's settings a user may change (``ConditionalDiffusion(autoencoder=...)``).
AUTOENCODER_OPTIONS = ("width", "depth", "dropout", "kl_weight", "posterior_noise")


def choose_space(space: str, *, has_library: bool, n_attributes: int = 1) -> str:
    """The space ``space`` names. ``auto`` is ``latent`` where the model knows library sizes
    (counts, or an ``n_counts`` column) and has one attribute at most (one condition, no
    dose); else ``gene``: attributes composed into combinations never measured add up in
    gene space (its additive path), and scored far lower in a latent (docs/fidelity.md)."""
    if space not in SPACE_CHOICES:
        raise InputError(f"{arg('space', space)} needs to be one of {', '.join(SPACE_CHOICES)}.")
    if space == "auto":
        return "latent" if has_library and n_attributes <= 1 else "gene"
    return space


#: The dimensions of a count autoencoder's latent, and of a PCA latent (at most the genes
#: less one), when none are given (docs/fidelity.md measures 32 against 64).
LATENT_DIM = 64
PCA_DIM = 32


#: The count autoencoder's dropout when none is given, by the number of training cells:
#: below :data:`LARGE_DATA_CELLS` it is what lets a decoder fitted on a few hundred cells
#: generalise (pbmc: with 0.1 the membership AUC rose from 0.57 to 0.63); from there on it
#: only blurs the decoder (the programmes simulator's 40,000 cells: held-out cells decoded
#: again score MMD 0.0055 with 0.3 and 0.0024, the floor's 0.0031, without). Measured in
#: docs/fidelity.md.
SMALL_DATA_DROPOUT = 0.3
LARGE_DATA_CELLS = 5_000


def autoencoder_dropout(n_cells: int) -> float:
    """The count autoencoder's default dropout for ``n_cells`` training cells
    (:data:`SMALL_DATA_DROPOUT` below :data:`LARGE_DATA_CELLS`, else none).

    Examples
    --------
    >>> autoencoder_dropout(490), autoencoder_dropout(40_000)
    (0.3, 0.0)
    """
    return SMALL_DATA_DROPOUT if n_cells < LARGE_DATA_CELLS else 0.0


def check_space(space: str, latent_dim) -> None:
    """Refuse a bad ``space`` or ``latent_dim`` before any data is read."""
    if space not in SPACE_CHOICES:
        raise InputError(f"{arg('space', space)} needs to be one of {', '.join(SPACE_CHOICES)}.")
    if latent_dim is not None:
        check_latent_dim(latent_dim)


def check_latent_dim(latent_dim) -> int:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int | np.integer) or latent_dim < 2:
        raise InputError(f"{arg('latent_dim', latent_dim)} needs to be a whole number >= 2.")
    return int(latent_dim)


def new_space(kind: str, preprocessor: Preprocessor, var_names, *, latent_dim: int | None,
              n_cells: int, autoencoder: Mapping | None = None) -> Space:
    """An unfitted space of ``kind`` over the modelled genes (and, for ``latent``, writing
    every gene of ``var_names``). ``latent_dim`` None: :data:`LATENT_DIM`, for a PCA :data:`PCA_DIM`, at most
    one less than the modelled genes. An autoencoder's dropout, unless ``autoencoder``
    gives it, follows the ``n_cells`` it trains on (:func:`autoencoder_dropout`)."""
    n_in = len(preprocessor.genes)
    if kind == "gene":
        return GeneSpace(n_in)
    if latent_dim is None:
        latent_dim = min(PCA_DIM, n_in - 1) if kind == "pca" else LATENT_DIM
    latent_dim = check_latent_dim(latent_dim)
    if kind == "pca":
        if latent_dim >= n_in:
            raise InputError(f"{arg('latent_dim', latent_dim)} needs to be below the {n_in} modelled "
                             f"genes for {arg('space', 'pca')}.")
        return PCASpace(n_in, latent_dim)
    options = dict(autoencoder or {})
    unknown = sorted(set(options) - set(AUTOENCODER_OPTIONS))
    if unknown:
        raise InputError(f"{arg('autoencoder', options)} names {unknown}; the settings are "
                         f"{', '.join(AUTOENCODER_OPTIONS)}.")
    options.setdefault("dropout", autoencoder_dropout(n_cells))
    return CountSpace(n_in, [str(g) for g in var_names], latent_dim=latent_dim,
                      normalise_by_total=preprocessor.input_scale == "counts",
                      target_sum=preprocessor.target_sum, **options)


def standardised_blocks(cells: CellTensors | BackedCells) -> Iterator[np.ndarray]:
    """The training cells' standardised modelled genes, block by block, in row order."""
    if isinstance(cells, BackedCells):
        yield from cells.standardised_blocks()
        return
    x = cells.x.numpy()
    for a in range(0, len(x), 32768):
        yield x[a:a + 32768]


def fit_pca(space: PCASpace, cells: CellTensors | BackedCells) -> None:
    """Fit the PCA from the training cells in one pass (their sum and Gram matrix), then the
    box of their scores."""
    n, total, gram = 0, np.zeros(space.n_inputs), np.zeros((space.n_inputs, space.n_inputs))
    for block in standardised_blocks(cells):
        b = block.astype(np.float64)
        n, total, gram = n + len(b), total + b.sum(axis=0), gram + b.T @ b
    space.fit_moments(n, total, gram)
    space.set_bounds(np.concatenate([space.encode(b) for b in standardised_blocks(cells)]))


def _sized_blocks(cells: Cells):
    """(standardised block, its cells' library sizes or None), in row order."""
    sizes = None if cells.counts is None else np.asarray(cells.counts.sizes, dtype=np.float64)
    a = 0
    for block in standardised_blocks(cells.genes):
        yield block, None if sizes is None else sizes[a:a + len(block)]
        a += len(block)


def network_cells(space: Space, cells: Cells) -> CellTensors | BackedCells:
    """The training cells in the network's space: the cells themselves in gene space, else
    their encodings (computed block by block, held in memory: cells x the space's
    dimensions; a latent space with the cells' log library sizes beside)."""
    genes = cells.genes
    if isinstance(space, GeneSpace):
        return genes
    cats, doses = ((torch.from_numpy(genes.codes), torch.from_numpy(genes.doses))
                   if isinstance(genes, BackedCells) else (genes.cats, genes.doses))
    if isinstance(space, CountSpace) and space.posterior_noise:
        pairs = [space.encode_posterior(b, sizes) for b, sizes in _sized_blocks(cells)]
        return PosteriorCells(torch.from_numpy(np.concatenate([m for m, _ in pairs])), cats, doses,
                              spread=torch.from_numpy(np.concatenate([s for _, s in pairs])))
    latents = np.concatenate([space.encode(b, sizes) for b, sizes in _sized_blocks(cells)])
    return CellTensors(torch.from_numpy(latents), cats, doses)


def encode_cells(parts, adata, where: str) -> np.ndarray:
    """Cells of an AnnData (to translate, or to monitor) in the model's network space; a
    latent space that diffuses library sizes reads theirs (counts, or ``n_counts``)."""
    from scdiff.data._counts import counts_of
    from scdiff.data._preprocess import read_expression

    pre, space = parts.preprocessor, parts.space
    z = pre.transform(pre.log_expression(adata))
    if not (isinstance(space, CountSpace) and space.library):
        return space.encode(z)
    X, scale = read_expression(adata, pre.layer, clip=pre.clip_negative)  # the cells' own scale
    try:
        sizes = counts_of(X, adata.obs, scale, target_sum=pre.target_sum)[1]
    except InputError as err:
        raise InputError(f"{where} need their library sizes for this latent-space model: give "
                         "counts, or log-normalised data with an obs column n_counts.") from err
    return space.encode(z, sizes)


def log_rate_init(counts_cells, target_sum: float) -> torch.Tensor:
    """Each gene's log mean reads per ``target_sum`` over (a sample of) the training cells:
    where the decoder's output bias starts."""
    counts, sizes = counts_cells.sample_counts()
    per = np.asarray(counts.multiply(target_sum / np.asarray(sizes)[:, None]).mean(axis=0)).ravel()
    return torch.from_numpy(np.log(per + 1e-4).astype(np.float32))


@dataclass
class Cells:
    """A new model's training cells: standardised modelled genes with their conditions
    (:class:`~scdiff.train.CellTensors`, or :class:`~scdiff.data._backed.BackedCells` for
    data on disk) and, for a count space, what its autoencoder trains on."""

    genes: CellTensors | BackedCells
    counts: object | None = None

    def __len__(self) -> int:
        return len(self.genes)
