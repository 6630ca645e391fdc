"""The networks: a conditional residual MLP and the latent space's count autoencoder (pure
torch, no AnnData)."""

from scdiff.nn._autoencoder import CountAutoencoder, nb_log_likelihood
from scdiff.nn._conditions import ConditionEmbedding
from scdiff.nn._dose import DOSE_ENCODERS, DoseEncoder, sinusoidal_embedding
from scdiff.nn._features import FeatureEmbedding, FeatureMap
from scdiff.nn._mean import MeanModel
from scdiff.nn._mlp import ConditionalMLP, ResidualBlock

__all__ = ["DOSE_ENCODERS", "ConditionEmbedding", "ConditionalMLP", "CountAutoencoder",
           "DoseEncoder", "FeatureEmbedding", "FeatureMap", "MeanModel", "ResidualBlock",
           "nb_log_likelihood", "sinusoidal_embedding"]
