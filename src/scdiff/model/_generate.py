"""Generation: which cells are asked for, the reverse diffusion, and the AnnData it becomes.

A request is one of three: ``n_cells`` with some conditions fixed (the rest in training
proportions), ``like`` (as many cells of each condition as a reference holds) or
``from_`` (real cells translated to other conditions). The network's output goes back
through the preprocessing, becomes exact zeros where real data hold zeros, and becomes
counts where counts are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import torch
from torch import nn

from scdiff._errors import InputError, arg
from scdiff._progress import progress_bar
from scdiff.data._library import counts_from_log, draw_library_sizes, round_below_one_read
from scdiff.diffusion import Guidance, sample_loop
from scdiff.model._setup import ModelParts
from scdiff.model._translate import translation_inputs
from scdiff.train import resolve_device, resolve_precision

#: At most this many cells in one request.
MAX_SAMPLE_CELLS = 50_000_000
#: How generated values become exact zeros (see ConditionalDiffusion.sample).
ZEROS = ("auto", "cell", "gene", "none")
SAMPLERS = ("ddim", "ddpm")


def compose_hint() -> str:
    """Appended to the unseen-combination warning when one guidance number drives every attribute."""
    return (" One guidance weight drives them all in one pass; a weight per attribute composes them "
            "and scored higher on a held-out combination (e.g. "
            f"{arg('guidance', {'cell_type': 1, 'drug': 1.5})}; docs/perturbation.md).")


@dataclass
class Request:
    """The cells asked for: their conditions, and where translation starts from."""

    frame: pd.DataFrame  # one row per cell: the attributes' values
    where: str  # how messages name the source of the conditions
    x_start: np.ndarray | None = None  # standardised expression of the cells to translate
    t_start: int | None = None


def make_request(parts: ModelParts, *, n_cells, condition, dose, like, from_, strength: float,
                 rng: np.random.Generator) -> Request:
    """The :class:`Request` of a ``sample`` call (consumes ``rng`` as sampling always has)."""
    if from_ is not None:
        if like is not None or n_cells is not None:
            raise InputError(f"give either {arg('from_')} (cells to translate) or {arg('like')}/"
                             f"{arg('n_cells')}, not both.")
        frame, x_start, t_start = translation_inputs(parts, from_, condition, dose, strength, rng)
        return Request(frame, "the cells to translate", x_start, t_start)
    if like is not None:
        if n_cells is not None or condition or dose:
            raise InputError(f"give either {arg('like')} or {arg('n_cells')}/{arg('condition')}/"
                             f"{arg('dose')}, not both.")
        obs = like.obs if isinstance(like, ad.AnnData) else like
        where = f"the {arg('like')} reference"
        missing = [k for k in parts.encoder.attributes if k not in obs.columns]
        if missing:
            raise InputError(f"{where} lacks the column(s) {missing} the model was trained on; "
                             f"its columns are: {', '.join(map(str, obs.columns))}.")
        return Request(obs[list(parts.encoder.attributes)].reset_index(drop=True), where)
    n_cells = 1000 if n_cells is None else n_cells
    check_n_cells(n_cells)
    return Request(parts.encoder.request_obs(int(n_cells), condition, dose, rng), "the request")


def check_n_cells(n_cells) -> None:
    if not isinstance(n_cells, (int, np.integer)) or not 0 < n_cells <= MAX_SAMPLE_CELLS:
        raise InputError(f"{arg('n_cells', n_cells)} needs to be a whole number "
                         f"between 1 and {MAX_SAMPLE_CELLS:,}.")


def check_sampling(parts: ModelParts, *, sampler: str, zeros: str, steps: int | None) -> tuple[str, int]:
    """The zero rule and step count a call resolves to, or one clear error."""
    if sampler not in SAMPLERS:
        raise InputError(f"{arg('sampler', sampler)} needs to be 'ddim' or 'ddpm'.")
    if zeros not in ZEROS:
        raise InputError(f"{arg('zeros', zeros)} needs to be one of {', '.join(ZEROS)}.")
    if zeros == "cell" and not parts.library:
        raise InputError(f"{arg('zeros', 'cell')} needs the training cells' library sizes, which this "
                         f"model lacks (trained on log data without n_counts); use {arg('zeros', 'gene')}.")
    if zeros == "auto":
        zeros = "cell" if parts.library else "gene"
    if steps is None:
        steps = 50 if sampler == "ddim" else parts.schedule.num_timesteps
    return zeros, steps


def generate(parts: ModelParts, net: nn.Module, codes: np.ndarray, doses: np.ndarray, *, guidance,
             steps: int, eta: float, seed: int, device: str, precision: str, batch_size: int,
             progress: bool, x_start: np.ndarray | None = None, t_start: int | None = None) -> np.ndarray:
    """Standardised expression of one generated cell per row of ``codes``/``doses``.

    ``net`` carries the weights to sample with (the EMA's); cells go through the reverse
    diffusion ``batch_size`` at a time, all guidance passes of a step in one batch.
    """
    dev = resolve_device(device)
    autocast = resolve_precision(precision, dev)
    net = net.to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    guide = Guidance(parts.encoder.attributes, guidance, pairs=parts.dose_pairs())
    n = codes.shape[0]
    out = np.empty((n, len(parts.genes)), dtype=np.float32)
    chunks = range(0, n, batch_size)
    total = len(chunks) * len(parts.schedule.timesteps(steps))
    with progress_bar("sampling", total, enabled=progress) as bar:
        for start in chunks:
            sl = slice(start, start + batch_size)
            x = sample_loop(
                net, parts.schedule, torch.from_numpy(codes[sl]).to(dev), torch.from_numpy(doses[sl]).to(dev),
                guidance=guide, steps=steps, eta=eta, generator=gen, autocast_dtype=autocast,
                on_step=bar.advance, t_start=t_start,
                x_start=None if x_start is None else torch.from_numpy(x_start[sl]).to(dev),
            )
            out[sl] = x.float().cpu().numpy()
    return out


def to_anndata(parts: ModelParts, z: np.ndarray, frame: pd.DataFrame, *, zeros: str, counts: bool,
               rng: np.random.Generator, uns: dict) -> ad.AnnData:
    """Generated standardised values -> log-normalised AnnData (or counts), typed obs, provenance."""
    X = parts.preprocessor.inverse(z, zeros=zeros != "none")
    if counts or zeros == "cell":  # one drawn library size per cell serves both
        lib = draw_library_sizes(parts.library, frame, parts.encoder.keys, rng)
    if zeros == "cell":
        X = round_below_one_read(X, lib, rng, target_sum=parts.preprocessor.target_sum, copy=False)
    obs = parts.encoder.to_obs(frame)
    obs.index = pd.Index([f"gen-{i}" for i in range(len(obs))])
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(parts.genes)))
    if counts:
        out.layers["log1p"] = X
        out.X = counts_from_log(X, lib, rng)
    out.uns["scdiff"] = {**uns, "space": "counts" if counts else "log1p_cp10k", "zeros": zeros}
    return out


def sample(parts: ModelParts, net: nn.Module, *, provenance: dict, n_cells=None, condition=None,
           dose=None, like=None, from_=None, strength: float = 0.6, guidance=1.0, steps=None,
           sampler: str = "ddim", seed: int = 0, device: str = "auto", precision: str = "fp32",
           batch_size: int = 8192, progress: bool = False, counts: bool = False,
           zeros: str = "auto") -> ad.AnnData:
    """:meth:`ConditionalDiffusion.sample` on the model's parts and its sampling network.

    ``provenance`` (the run and training seed) goes into ``uns["scdiff"]``.
    """
    zeros, steps = check_sampling(parts, sampler=sampler, zeros=zeros, steps=steps)
    rng = np.random.default_rng(seed)
    req = make_request(parts, n_cells=n_cells, condition=condition, dose=dose, like=like,
                       from_=from_, strength=strength, rng=rng)
    if len(req.frame) == 0:
        raise InputError("the reference holds no cells; nothing to generate.")
    codes, doses = parts.encoder.encode(req.frame, where=req.where)
    parts.encoder.warn_unseen_combinations(req.frame, hint="" if isinstance(guidance, Mapping)
                                           else compose_hint())
    z = generate(parts, net, codes, doses, guidance=guidance, steps=steps,
                 eta=1.0 if sampler == "ddpm" else 0.0, seed=seed, device=device, precision=precision,
                 batch_size=batch_size, progress=progress, x_start=req.x_start, t_start=req.t_start)
    uns = {**provenance, "sampler": sampler, "steps": int(steps), "seed": int(seed),
           "guidance": dict(guidance) if isinstance(guidance, Mapping) else float(guidance)}
    out = to_anndata(parts, z, req.frame, zeros=zeros, counts=counts, rng=rng, uns=uns)
    if from_ is not None:
        out.obs["translated_from"] = from_.obs_names.astype(str).to_numpy()
        out.uns["scdiff"]["strength"] = float(strength)
    return out
