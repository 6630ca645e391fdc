"""The networks: a conditional residual MLP, a small transformer over latent tokens, and the
latent space's count autoencoder (pure torch, no AnnData)."""

from scdiff.nn._autoencoder import CountAutoencoder, nb_log_likelihood
from scdiff.nn._mlp import (
    DOSE_ENCODERS,
    ConditionalMLP,
    ConditionedNetwork,
    DoseEncoder,
    ResidualBlock,
    sinusoidal_embedding,
)
from scdiff.nn._transformer import BACKBONES, LatentTransformer, build_network

__all__ = ["BACKBONES", "DOSE_ENCODERS", "ConditionalMLP", "ConditionedNetwork", "CountAutoencoder",
           "DoseEncoder", "LatentTransformer", "ResidualBlock", "build_network", "nb_log_likelihood",
           "sinusoidal_embedding"]
