"""The autoencoder of the latent space: standardised expression in, a small latent, and a
negative-binomial decoder that gives every gene of the input back as counts.

Pure torch: knows nothing of AnnData. The encoder reads the standardised modelled genes
(the most variable ones); the decoder writes every gene's expected reads per
``target_sum`` reads of the cell (its library size), and each gene has its own
negative-binomial inverse dispersion. The encoder is a Gaussian posterior
(a variational autoencoder, as scVI uses): an unregularised latent leaves gaps that points
drawn by a diffusion fall into, and an autoencoder that fits its training cells too closely
encodes new cells badly (docs/fidelity.md measures the regularisation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: The log-rate (per target_sum reads) is clamped here before exp: far beyond any real gene.
MAX_LOG_RATE = 15.0


def nb_log_likelihood(counts: torch.Tensor, mean: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``counts`` under NB(mean, inverse dispersion theta), elementwise.

    ``P(k) = Gamma(k + theta) / (Gamma(theta) k!) (theta / (theta + mu))^theta
    (mu / (theta + mu))^k``: scipy's ``nbinom(n=theta, p=theta / (theta + mu))``; the
    variance is ``mu + mu^2 / theta``. Computed in float32 from logs, so a zero mean
    with zero counts gives 0 (probability 1), not NaN.

    Examples
    --------
    >>> lp = nb_log_likelihood(torch.tensor([0.0, 3.0]), torch.tensor([2.0, 2.0]), torch.tensor(0.0))
    >>> [round(v, 4) for v in lp.tolist()]   # theta 1: geometric, P(0) = 1/3, P(3) = 8/81
    [-1.0986, -2.3153]
    """
    counts, mean = counts.float(), mean.float()
    theta = log_theta.float().exp()
    log_theta_mu = torch.log(theta + mean + 1e-8)
    return (torch.lgamma(counts + theta) - torch.lgamma(theta) - torch.lgamma(counts + 1.0)
            + theta * (log_theta.float() - log_theta_mu)
            + counts * (torch.log(mean + 1e-8) - log_theta_mu))


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.SiLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class CountAutoencoder(nn.Module):
    """Encoder to a Gaussian latent, decoder to negative-binomial counts of every gene.

    Parameters
    ----------
    n_inputs
        Width of the encoder's input (the standardised modelled genes).
    n_outputs
        Genes the decoder writes (every gene of the input data).
    latent_dim
        Dimensions of the latent.
    width, depth
        Hidden width and number of hidden layers of the encoder and of the decoder.
    dropout
        Dropout of the hidden layers.
    log_rate_init
        Each output gene's mean log-rate per ``target_sum`` reads over the training cells:
        the decoder's output bias starts there, so the first steps fit programmes rather
        than the genes' means.

    Examples
    --------
    >>> ae = CountAutoencoder(50, 80, latent_dim=8, width=32)
    >>> mu, logvar, log_rate, log_theta = ae(torch.randn(4, 50), torch.zeros(4, 8))
    >>> mu.shape, log_rate.shape
    (torch.Size([4, 8]), torch.Size([4, 80]))
    """

    def __init__(self, n_inputs: int, n_outputs: int, *, latent_dim: int = 32, width: int = 256,
                 depth: int = 2, dropout: float = 0.1,
                 log_rate_init: torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_inputs, self.n_outputs, self.latent_dim = n_inputs, n_outputs, latent_dim
        hidden = [width] * max(1, depth)
        self.encoder = _mlp([n_inputs, *hidden, 2 * latent_dim], dropout)
        self.decoder = _mlp([latent_dim, *hidden, n_outputs], dropout)
        # theta 1-10 is typical of UMI data; start in the middle, per gene
        self.log_theta = nn.Parameter(torch.full((n_outputs,), math.log(3.0)))
        if log_rate_init is not None:
            with torch.no_grad():
                self.decoder[-1].bias.copy_(log_rate_init.float())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance) of each cell's Gaussian posterior in the latent."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Each gene's log expected reads per ``target_sum`` reads of the cell (clamped where
        its exp would overflow)."""
        return self.decoder(z).clamp(max=MAX_LOG_RATE)

    def forward(self, x: torch.Tensor, eps: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(posterior mean, log-variance, log-rate of the decoded draw ``mu + sigma eps``,
        the genes' log inverse dispersions): everything the loss needs, from one call (so
        DistributedDataParallel sees every parameter used in its forward). The loss never
        exponentiates the log-rate, so it is not clamped here."""
        mu, logvar = self.encode(x)
        return mu, logvar, self.decoder(mu + (0.5 * logvar).exp() * eps), self.log_theta
