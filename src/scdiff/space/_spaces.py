"""The space the diffusion runs in, between the standardised modelled genes and the network.

- :class:`GeneSpace`: the standardised modelled genes themselves (the most variable ones).
- :class:`PCASpace`: their principal components, whitened; decoding adds back each gene's
  residual spread (probabilistic PCA), so decoded cells are not smoother than real ones.
- :class:`CountSpace`: the latent of a :class:`~scdiff.nn.CountAutoencoder`, standardised;
  its decoder gives every gene of the input back as negative-binomial counts.

Each is a plain object: its constructor's arguments and :meth:`to_config` are its JSON
config, :meth:`tensors` its fitted arrays (saved as safetensors). ``encode`` maps
standardised modelled genes to the network's space; ``bounds`` is the box a sampled cell
is clipped to when guidance extrapolates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from scdiff.nn import CountAutoencoder

#: The spaces a model can diffuse in (``auto`` chooses one from the data; see the model).
SPACES = ("gene", "pca", "latent")
#: Rows encoded or decoded at a time (bounds memory for wide panels and large samples).
BLOCK_ROWS = 4096
#: How far beyond the training latents' range a sample may go before it is clipped (a
#: fraction of the range on each side): the latents of new cells exceed the training ones.
BOUND_MARGIN = 0.1


def _box(latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = latents.min(axis=0), latents.max(axis=0)
    pad = BOUND_MARGIN * (hi - lo)
    return (lo - pad).astype(np.float32), (hi + pad).astype(np.float32)


@dataclass
class GeneSpace:
    """The diffusion runs on the standardised modelled genes (no encoding)."""

    n_inputs: int
    kind: str = field(default="gene", init=False)

    @property
    def dim(self) -> int:
        return self.n_inputs

    @property
    def fitted(self) -> bool:
        return True

    def encode(self, z: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(z, dtype=np.float32)

    def decode(self, latent: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return latent

    def to_config(self) -> dict:
        return {"kind": self.kind, "n_inputs": int(self.n_inputs)}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        return None


@dataclass
class PCASpace:
    """Whitened principal components of the standardised modelled genes.

    ``encode(z) = (z - mean) V^T / scale``; decoding inverts it and, with a random
    generator, adds each gene's residual (the variance beyond ``latent_dim`` components)
    as Gaussian noise.
    """

    n_inputs: int
    latent_dim: int = 32
    kind: str = field(default="pca", init=False)
    mean: np.ndarray | None = None
    components: np.ndarray | None = None  # (latent_dim, n_inputs), unit rows
    scale: np.ndarray | None = None  # standard deviation of each component's scores
    residual: np.ndarray | None = None  # each gene's residual standard deviation
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.latent_dim

    @property
    def fitted(self) -> bool:
        return self.components is not None

    def fit_moments(self, n: int, total: np.ndarray, gram: np.ndarray) -> None:
        """Fit from the number of cells, the sum of their rows and their Gram matrix."""
        mean = total / n
        cov = (gram - n * np.outer(mean, mean)) / max(n - 1, 1)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1][: self.latent_dim]
        comps = evecs[:, order].T
        comps *= np.sign(comps[np.arange(len(order)), np.abs(comps).argmax(axis=1)])[:, None]
        var = np.maximum(evals[order], 1e-12)
        resid = np.maximum(np.diag(cov) - (comps**2 * var[:, None]).sum(axis=0), 0.0)
        self.mean, self.components = mean.astype(np.float32), comps.astype(np.float32)
        self.scale, self.residual = np.sqrt(var).astype(np.float32), np.sqrt(resid).astype(np.float32)

    def set_bounds(self, latents: np.ndarray) -> None:
        self.lower, self.upper = _box(latents)

    def encode(self, z: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        return (((np.asarray(z, dtype=np.float32) - self.mean) @ self.components.T) / self.scale
                ).astype(np.float32)

    def decode(self, latent: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Standardised modelled genes of ``latent`` rows; with ``rng``, residual noise added."""
        z = (np.asarray(latent, dtype=np.float32) * self.scale) @ self.components + self.mean
        if rng is not None:
            z += rng.standard_normal(z.shape, dtype=np.float32) * self.residual
        return z.astype(np.float32)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper

    def to_config(self) -> dict:
        return {"kind": self.kind, "n_inputs": int(self.n_inputs), "latent_dim": int(self.latent_dim)}

    def tensors(self) -> dict[str, torch.Tensor]:
        names = ("mean", "components", "scale", "residual", "lower", "upper")
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in names}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for k, v in tensors.items():
            setattr(self, k, v.numpy().astype(np.float32))


@dataclass
class CountSpace:
    """The latent of a negative-binomial autoencoder, standardised per dimension.

    Parameters
    ----------
    n_inputs
        The encoder's input: the standardised modelled genes.
    genes
        Every gene the decoder writes (all genes of the training data, in order).
    latent_dim, width, depth, dropout
        The autoencoder's shape (:class:`~scdiff.nn.CountAutoencoder`).
    kl_weight
        The KL term's weight in its loss (1, the default, is a plain VAE).
    posterior_noise
        Train the diffusion on draws from each cell's posterior (a fresh draw every time a
        cell is seen) rather than on the posterior means: a regulariser, measured in
        docs/fidelity.md.
    library
        Diffuse each cell's log library size beside its latent (one more dimension, last),
        so a generated cell's depth comes with its state instead of being drawn apart.
    normalise_by_total
        Whether output cells are normalised by their own total counts (the data were
        counts of every gene) or by their drawn library size (log-normalised data whose
        library, ``n_counts``, covered more genes than the data hold).
    target_sum
        Reads per cell the log-normalisation scales to.
    """

    n_inputs: int
    genes: list[str]
    latent_dim: int = 32
    width: int = 256
    depth: int = 2
    dropout: float = 0.3
    kl_weight: float = 1.0
    posterior_noise: bool = False
    library: bool = True
    normalise_by_total: bool = True
    target_sum: float = 1e4
    kind: str = field(default="latent", init=False)
    autoencoder: CountAutoencoder | None = field(default=None, repr=False)
    latent_mean: np.ndarray | None = None
    latent_std: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    library_stats: np.ndarray | None = None  # mean and standard deviation of log library sizes

    @property
    def dim(self) -> int:
        return self.latent_dim + int(self.library)

    @property
    def fitted(self) -> bool:
        return self.latent_mean is not None and self.autoencoder is not None

    def build_autoencoder(self, log_rate_init: torch.Tensor | None = None) -> CountAutoencoder:
        """A freshly initialised autoencoder of this shape (draws from torch's RNG)."""
        return CountAutoencoder(self.n_inputs, len(self.genes), latent_dim=self.latent_dim,
                                width=self.width, depth=self.depth, dropout=self.dropout,
                                log_rate_init=log_rate_init)

    def set_autoencoder(self, state: dict[str, torch.Tensor]) -> None:
        """Take the trained weights; the latent's scaling comes from :meth:`set_latents`."""
        with torch.device("meta"):
            ae = self.build_autoencoder()
        ae.load_state_dict(state, assign=True)
        self.autoencoder = ae.eval()

    @torch.no_grad()
    def posterior_means(self, z: np.ndarray, *, spread: bool = False):
        """The encoder's posterior mean of each row of ``z`` (not yet standardised); with
        ``spread``, (means, posterior standard deviations)."""
        out = np.empty((z.shape[0], self.latent_dim), dtype=np.float32)
        sd = np.empty_like(out) if spread else None
        for a in range(0, z.shape[0], BLOCK_ROWS):
            block = torch.from_numpy(np.asarray(z[a:a + BLOCK_ROWS], dtype=np.float32))
            mu, logvar = self.autoencoder.encode(block)
            out[a:a + BLOCK_ROWS] = mu.numpy()
            if spread:
                sd[a:a + BLOCK_ROWS] = (0.5 * logvar).exp().numpy()
        return (out, sd) if spread else out

    def encode_posterior(self, z: np.ndarray, sizes: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(the cells in the network's space, their posterior standard deviations in the
        same units; 0 for the library size, known exactly)."""
        mu, sd = self.posterior_means(z, spread=True)
        sd = (sd / self.latent_std).astype(np.float32)
        if self.library:
            sd = np.concatenate([sd, np.zeros((len(sd), 1), np.float32)], axis=1)
        return self._with_library((mu - self.latent_mean) / self.latent_std, sizes), sd

    def set_latents(self, latents: np.ndarray, sizes: np.ndarray | None = None) -> None:
        """Standardise by the training cells' posterior means (``latents``) and their log
        library sizes (``sizes``, where the library is diffused), and record the box."""
        self.latent_mean = latents.mean(axis=0).astype(np.float32)
        self.latent_std = np.maximum(latents.std(axis=0), 1e-6).astype(np.float32)
        if self.library:
            log_lib = np.log(np.asarray(sizes, dtype=np.float64))
            self.library_stats = np.array([log_lib.mean(), max(log_lib.std(), 1e-3)], np.float32)
        self.lower, self.upper = _box(self._with_library((latents - self.latent_mean) / self.latent_std,
                                                         sizes))

    def _with_library(self, latent: np.ndarray, sizes: np.ndarray | None) -> np.ndarray:
        if not self.library:
            return latent.astype(np.float32)
        if sizes is None:
            raise ValueError("this space diffuses library sizes: encoding needs the cells' sizes.")
        m, s = self.library_stats
        column = (np.log(np.asarray(sizes, dtype=np.float64)) - m) / s
        return np.concatenate([latent, column[:, None]], axis=1).astype(np.float32)

    def split(self, cells: np.ndarray, sizes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(latents, library sizes) of cells in the network's space: the diffused library
        sizes where the space has them, else ``sizes``."""
        if not self.library:
            return cells, sizes
        m, s = self.library_stats
        return cells[:, :-1], np.exp(cells[:, -1].astype(np.float64) * s + m)

    def encode(self, z: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        return self._with_library((self.posterior_means(z) - self.latent_mean) / self.latent_std, sizes)

    @torch.no_grad()
    def expected_counts(self, latent: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Each gene's expected count in cells at ``latent`` (network space) with library
        sizes ``sizes``: ``exp(decoder) * size / target_sum``."""
        raw = torch.from_numpy(np.asarray(latent, dtype=np.float32) * self.latent_std + self.latent_mean)
        rate = self.autoencoder.decode(raw).exp().numpy()
        return rate * (np.asarray(sizes, dtype=np.float32)[:, None] / np.float32(self.target_sum))

    @property
    def theta(self) -> np.ndarray:
        """Each gene's negative-binomial inverse dispersion."""
        return self.autoencoder.log_theta.detach().exp().numpy().astype(np.float64)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper

    def to_config(self) -> dict:
        return {"kind": self.kind, "n_inputs": int(self.n_inputs), "genes": list(self.genes),
                "latent_dim": int(self.latent_dim), "width": int(self.width), "depth": int(self.depth),
                "dropout": float(self.dropout), "kl_weight": float(self.kl_weight),
                **({"posterior_noise": True} if self.posterior_noise else {}),
                "library": bool(self.library), "normalise_by_total": bool(self.normalise_by_total),
                "target_sum": float(self.target_sum)}

    def _arrays(self) -> tuple[str, ...]:
        return ("latent_mean", "latent_std", "lower", "upper", *(("library_stats",) if self.library else ()))

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"autoencoder.{k}": v for k, v in self.autoencoder.state_dict().items()}
        for k in self._arrays():
            out[k] = torch.from_numpy(np.ascontiguousarray(getattr(self, k)))
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.set_autoencoder({k.split(".", 1)[1]: v for k, v in tensors.items()
                              if k.startswith("autoencoder.")})
        for k in self._arrays():
            setattr(self, k, tensors[k].numpy().astype(np.float32))


Space = GeneSpace | PCASpace | CountSpace


def space_from_config(config: dict | None, n_inputs: int) -> Space:
    """The (unfitted) space a config records; a run from before spaces is in gene space."""
    if not config:
        return GeneSpace(n_inputs)
    config = dict(config)
    kind = config.pop("kind")
    cls = {"gene": GeneSpace, "pca": PCASpace, "latent": CountSpace}[kind]
    return cls(**config)
