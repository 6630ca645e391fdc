"""The network: a conditional residual MLP (pure torch, no AnnData)."""

from scdiff.nn._mlp import ConditionalMLP, DoseEncoder, ResidualBlock, sinusoidal_embedding

__all__ = ["ConditionalMLP", "DoseEncoder", "ResidualBlock", "sinusoidal_embedding"]
