"""The network: a conditional residual MLP (pure torch, no AnnData)."""

from scdiff.nn._mlp import (
    DOSE_ENCODERS,
    ConditionalMLP,
    DoseEncoder,
    ResidualBlock,
    sinusoidal_embedding,
)

__all__ = ["DOSE_ENCODERS", "ConditionalMLP", "DoseEncoder", "ResidualBlock", "sinusoidal_embedding"]
