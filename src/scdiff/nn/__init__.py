"""The networks: a conditional residual MLP and the latent space's count autoencoder (pure
torch, no AnnData)."""

from scdiff.nn._autoencoder import CountAutoencoder, nb_log_likelihood
from scdiff.nn._mlp import (
    DOSE_ENCODERS,
    ConditionalMLP,
    DoseEncoder,
    ResidualBlock,
    sinusoidal_embedding,
)

__all__ = ["DOSE_ENCODERS", "ConditionalMLP", "CountAutoencoder",
           "DoseEncoder", "ResidualBlock", "nb_log_likelihood",
           "sinusoidal_embedding"]
