"""Diffusion: the noise schedule and the sampling loop."""

from scdiff.diffusion._sampler import Guidance, sample_loop
from scdiff.diffusion._schedule import NoiseSchedule, cosine_betas, linear_betas

__all__ = ["Guidance", "NoiseSchedule", "cosine_betas", "linear_betas", "sample_loop"]
