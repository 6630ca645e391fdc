"""The space the diffusion runs in: the modelled genes, their principal components, or the
latent of a count autoencoder whose decoder gives every gene back (pure numpy and torch)."""

from scdiff.space._spaces import (
    SPACES,
    CountSpace,
    GeneSpace,
    PCASpace,
    Space,
    space_from_config,
)

__all__ = ["SPACES", "CountSpace", "GeneSpace", "PCASpace", "Space", "space_from_config"]
