"""Generation: which cells are asked for, the reverse diffusion, and the AnnData it becomes.

A request is one of three: ``n_cells`` with some conditions fixed (the rest in training
proportions), ``like`` (as many cells of each condition as a reference holds) or
``from_`` (real cells translated to other conditions). The network's output goes back
through the preprocessing, becomes exact zeros where real data hold zeros, and gets
integer counts beside it where the model knows library sizes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import anndata as ad
import numpy as np
import pandas as pd
import torch
from torch import nn

from scdiff._errors import InputError, arg
from scdiff._progress import progress_bar
from scdiff._threads import check_threads
from scdiff.data import _library
from scdiff.diffusion import Guidance, sample_loop
from scdiff.diffusion._sampler import MULTISTEP
from scdiff.model._decode import LAYERS, NB_COUNTS, expression
from scdiff.model._setup import ModelParts
from scdiff.model._translate import translation_inputs
from scdiff.train import resolve_device, resolve_precision

#: At most this many cells in one request.
MAX_SAMPLE_CELLS = 50_000_000
#: How generated values become exact zeros (see ConditionalDiffusion.sample).
ZEROS = ("auto", "cell", "gene", "none")
#: The reverse-process solvers: DDIM, DDPM (ancestral, stochastic), DPM-Solver++(2M) and
#: UniPC (DPM-Solver++ with a corrector that costs no network call).
SAMPLERS = ("ddim", "ddpm", *MULTISTEP)
CLIPS = ("auto", True, False)
#: Steps when none are given (DDPM: every timestep): the fewest at which each sampler
#: scored within DDIM-50's seed spread on every data set (docs/performance.md).
DEFAULT_STEPS = {"ddim": 50, "dpm++": 20, "unipc": 10}
#: The sampler when none is given.
DEFAULT_SAMPLER = "unipc"
#: Cells per reverse-diffusion batch when none is given: {on a GPU?: cells}. On the CPU a
#: batch of 8192 (its activations over the 32 MB glibc serves from the heap) spent more
#: time faulting fresh pages than computing; 1024 sampled 2.6x faster (docs/performance.md).
SAMPLE_BATCH = {False: 1024, True: 8192}


def compose_hint() -> str:
    """Appended to the unseen-combination warning when one guidance number drives every attribute."""
    return (" One guidance weight drives them all in one pass; a weight per attribute composes them "
            "and scored higher on a held-out combination (e.g. "
            f"{arg('guidance', {'cell_type': 1, 'drug': 1.5})}; docs/perturbation.md).")


@dataclass(frozen=True)
class Sampling:
    """How cells are generated: every option of a ``sample`` call but the request."""

    guidance: float | Mapping[str, float] = 1.0
    steps: int | None = None
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    progress: bool = False
    counts: bool = False
    zeros: str = "auto"
    clip: bool | str = "auto"
    threads: int | str = "auto"
    invert: bool = False

    def resolve(self, parts: ModelParts) -> Sampling:
        """These options checked against the model, with ``auto`` and defaults filled in;
        every refusal happens here, before any work."""
        if self.sampler not in SAMPLERS:
            raise InputError(f"{arg('sampler', self.sampler)} needs to be one of "
                             f"{', '.join(SAMPLERS)}.")
        if self.sampler == "ddpm" and not parts.schedule.variance_preserving:
            raise InputError(f"{arg('sampler', 'ddpm')} needs a diffusion schedule; a flow model "
                             f"samples with {arg('sampler', 'unipc')}, {arg('sampler', 'dpm++')} or "
                             f"{arg('sampler', 'ddim')}.")
        if self.zeros not in ZEROS:
            raise InputError(f"{arg('zeros', self.zeros)} needs to be one of {', '.join(ZEROS)}.")
        _check_table_options(self, parts)
        if parts.space.kind == "latent" and self.zeros != "auto":
            raise InputError(f"{arg('zeros', self.zeros)} shapes the zeros of a gene-space model; a "
                             "latent-space model draws its cells as counts, whose zeros are real "
                             f"ones: leave {arg('zeros')} at 'auto'.")
        if self.zeros == "cell" and not parts.library:
            raise InputError(f"{arg('zeros', 'cell')} needs the training cells' library sizes, which "
                             "this model lacks (trained on log data without n_counts); use "
                             f"{arg('zeros', 'gene')}.")
        if self.counts and not parts.library:
            raise InputError("counts were asked for, but the model was trained on log-normalised data "
                             "without library sizes; train on raw counts (or with an obs column "
                             f"n_counts/total_counts), or sample without {arg('counts', True)}.")
        if self.clip not in CLIPS:
            raise InputError(f"{arg('clip', self.clip)} needs to be True, False or 'auto'.")
        if not isinstance(self.invert, bool):
            raise InputError(f"{arg('invert', self.invert)} needs to be True or False.")
        _check_whole(self.seed, "seed", low=0)
        if self.batch_size is not None:
            _check_whole(self.batch_size, "batch_size", low=1)
        check_threads(self.threads)
        guide = Guidance(parts.encoder.attributes, self.guidance, pairs=parts.dose_pairs())
        zeros = self.zeros if self.zeros != "auto" else (
            "none" if parts.table is not None else
            "counts" if parts.space.kind == "latent" else "cell" if parts.library else "gene")
        steps = self.steps if self.steps is not None else DEFAULT_STEPS.get(
            self.sampler, parts.schedule.num_timesteps)
        parts.schedule.timesteps(steps)  # checks the range
        clip = (not guide.plain) if self.clip == "auto" else self.clip
        batch = self.batch_size or SAMPLE_BATCH[resolve_device(self.device).type == "cuda"]
        return Sampling(**{**asdict(self), "zeros": zeros, "steps": int(steps), "clip": clip,
                           "batch_size": int(batch)})

    def provenance(self) -> dict:
        g = self.guidance
        return {"sampler": self.sampler, "steps": int(self.steps), "seed": int(self.seed),
                "guidance": dict(g) if isinstance(g, Mapping) else float(g), "clip": bool(self.clip),
                **({"invert": True} if self.invert else {})}


def _check_table_options(how: Sampling, parts: ModelParts) -> None:
    """Refuse the expression-only options for a table model, each in one line."""
    if parts.table is None:
        return
    if how.counts:
        raise InputError(f"{arg('counts', True)} asks for read counts; a table model writes the "
                         "table's own columns: sample without it.")
    if how.zeros != "auto":
        raise InputError(f"{arg('zeros', how.zeros)} shapes the zeros of expression; a table model "
                         f"restores each column's own values: leave {arg('zeros')} at 'auto'.")
    if how.invert:
        raise InputError(f"{arg('invert', True)} translates given cells; a table model does not "
                         "translate rows yet: sample new rows instead.")


def _check_whole(value, name: str, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InputError(f"{arg(name, value)} needs to be a whole number >= {low}.")


@dataclass
class Request:
    """The cells asked for: their conditions, and where translation starts from."""

    frame: pd.DataFrame  # one row per cell: the attributes' values
    where: str  # how messages name the source of the conditions
    x_start: np.ndarray | None = None  # the cells to translate, in the network's space
    t_start: int | None = None
    own: pd.DataFrame | None = None  # the translated cells' own conditions


def _check_mapping(value, name: str, example: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{arg(name)} needs to map each attribute to its value, e.g. "
                         f"{arg(name, {'cell_type': example})}; got {value!r}.")
    return dict(value)


def make_request(parts: ModelParts, *, n_cells, condition, dose, like, from_, strength: float,
                 rng: np.random.Generator) -> Request:
    """The :class:`Request` of a ``sample`` call (consumes ``rng`` as sampling always has)."""
    condition = _check_mapping(condition, "condition", "B")
    dose = _check_mapping(dose, "dose", "1.0")
    if from_ is not None:
        if like is not None or n_cells is not None:
            raise InputError(f"give either {arg('from_')} (cells to translate) or {arg('like')}/"
                             f"{arg('n_cells')}, not both.")
        frame, own, x_start, t_start = translation_inputs(parts, from_, condition, dose, strength, rng)
        return Request(frame, "the cells to translate", x_start, t_start, own)
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
    if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) \
            or not 0 < n_cells <= MAX_SAMPLE_CELLS:
        raise InputError(f"{arg('n_cells', n_cells)} needs to be a whole number "
                         f"between 1 and {MAX_SAMPLE_CELLS:,}.")


def generate(parts: ModelParts, net: nn.Module, codes: np.ndarray, doses: np.ndarray, how: Sampling,
             *, x_start: np.ndarray | None = None, t_start: int | None = None,
             own: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Standardised expression of one generated cell per row of ``codes``/``doses``.

    ``net`` carries the weights to sample with (the EMA's); cells go through the reverse
    diffusion ``how.batch_size`` at a time, all guidance passes of a step in one batch.
    With ``how.clip``, every step's predicted clean cell is kept within the range each
    gene took in training. ``own``: the codes and doses of ``x_start``'s cells, which
    ``how.invert`` carries up the ODE under them.
    """
    dev = resolve_device(how.device)
    autocast = resolve_precision(how.precision, dev)
    net = net.to(dev)
    gen = torch.Generator(device=dev).manual_seed(how.seed)
    guide = Guidance(parts.encoder.attributes, how.guidance, pairs=parts.dose_pairs())
    box = parts.preprocessor.bounds() if parts.space.kind == "gene" else parts.space.bounds()
    bounds = tuple(torch.from_numpy(b).to(dev) for b in box) if how.clip else None
    n = codes.shape[0]
    out = np.empty((n, parts.space.dim), dtype=np.float32)
    chunks = range(0, n, how.batch_size)
    total = len(chunks) * len(parts.schedule.timesteps(how.steps, trailing=how.sampler in MULTISTEP))
    with progress_bar("sampling", total, enabled=how.progress) as bar:
        for start in chunks:
            sl = slice(start, start + how.batch_size)
            x = sample_loop(
                net, parts.schedule, torch.from_numpy(codes[sl]).to(dev), torch.from_numpy(doses[sl]).to(dev),
                guidance=guide, steps=how.steps, eta=1.0 if how.sampler == "ddpm" else 0.0, generator=gen,
                autocast_dtype=autocast, on_step=bar.advance, t_start=t_start, x0_bounds=bounds,
                solver=how.sampler if how.sampler in MULTISTEP else None,
                x_start=None if x_start is None else torch.from_numpy(x_start[sl]).to(dev),
                invert=None if own is None or not how.invert else
                (torch.from_numpy(own[0][sl]).to(dev), torch.from_numpy(own[1][sl]).to(dev)),
            )
            out[sl] = x.float().cpu().numpy()
    return out


def to_anndata(parts: ModelParts, z: np.ndarray, frame: pd.DataFrame, how: Sampling, *,
               rng: np.random.Generator, uns: dict, names: str, sparse: bool = False) -> ad.AnnData:
    """Generated standardised values -> AnnData: ``X`` log-normalised (counts with
    ``how.counts``), integer counts in ``layers["counts"]`` where the model knows library
    sizes, typed obs named ``{names}-{i}``, provenance in ``uns["scdiff"]``. With
    ``sparse``, the matrices are CSR (the same values; the counts drawn on the non-zeros).
    ``z`` (float32) is overwritten."""
    lib = (_library.draw_library_sizes(parts.library, frame, parts.encoder.keys, rng)
           if parts.library else None)
    X, counts = expression(parts, z, lib, how.zeros, rng)
    if not sparse:
        X, counts = X.toarray(), None if counts is None else counts.toarray()
    obs = parts.encoder.to_obs(frame)
    obs.index = pd.Index([f"{names}-{i}" for i in range(len(obs))])
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(parts.genes)))
    if counts is not None:
        if how.counts:
            out.layers["log1p"], out.X = X, counts
        else:
            out.layers["counts"] = counts
    layers = {k: NB_COUNTS if k == "counts" and parts.space.kind == "latent" else LAYERS[k]
              for k in out.layers}
    out.uns["scdiff"] = {**uns, "space": "counts" if how.counts else "log1p_cp10k", "zeros": how.zeros,
                         "input_scale": parts.preprocessor.input_scale, "layers": layers,
                         "model_space": parts.space.kind}
    return out


def to_table(parts: ModelParts, z: np.ndarray, frame: pd.DataFrame, *, uns: dict) -> pd.DataFrame:
    """Generated standardised values of a table model -> the training table's columns, in
    its order, dtypes and categories (:meth:`scdiff.data.TableCodec.decode`); how the rows
    were made is in ``attrs["scdiff"]``."""
    out = parts.table.decode(parts.preprocessor.inverse(z, inplace=True), parts.encoder.to_obs(frame))
    out.attrs["scdiff"] = {**uns, "kind": "tabular"}
    return out


def names_prefix(run_id: str, how: Sampling, frame: pd.DataFrame) -> str:
    """``gen-<8 hex>``: a digest of the run, the options and the request, so samples that
    differ in any of them get different cell names, and the same call the same ones."""
    blob = json.dumps([run_id, how.provenance(), how.zeros, how.counts], sort_keys=True, default=str)
    rows = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes()
    return "gen-" + hashlib.sha1(blob.encode() + rows).hexdigest()[:8]


def sample(parts: ModelParts, net: nn.Module, how: Sampling, *, provenance: dict, run_id: str,
           n_cells=None, condition=None, dose=None, like=None, from_=None,
           strength: float = 0.6, sparse: bool = False) -> ad.AnnData:
    """:meth:`ConditionalDiffusion.sample` on the model's parts and its sampling network
    (``how`` resolved by :meth:`Sampling.resolve`); ``provenance`` goes into ``uns``."""
    rng = np.random.default_rng(how.seed)
    if parts.table is not None and from_ is not None:
        raise InputError(f"{arg('from_')} translates given cells; a table model does not translate "
                         f"rows yet: sample new rows (with {arg('like')} or {arg('condition')}).")
    if parts.table is not None and sparse:
        raise InputError(f"{arg('sparse', True)} is for expression matrices; a table model returns "
                         "a DataFrame.")
    req = make_request(parts, n_cells=n_cells, condition=condition, dose=dose, like=like,
                       from_=from_, strength=strength, rng=rng)
    if len(req.frame) == 0:
        raise InputError("the reference holds no cells; nothing to generate.")
    codes, doses = parts.encoder.encode(req.frame, where=req.where)
    # a mean model composes the attributes by construction; guidance weights would not help it
    composed = isinstance(how.guidance, Mapping) or parts.network_config.get("mean") is not None
    parts.encoder.warn_unseen_combinations(req.frame, hint="" if composed else compose_hint())
    parts.encoder.warn_unmeasured(req.frame)
    if how.invert and from_ is None:
        raise InputError(f"{arg('invert', True)} carries given cells up the ODE; it needs "
                         f"{arg('from_')} (the cells to translate).")
    own = parts.encoder.encode(req.own, where=req.where) if how.invert else None
    z = generate(parts, net, codes, doses, how, x_start=req.x_start, t_start=req.t_start, own=own)
    if parts.table is not None:
        return to_table(parts, z, req.frame, uns={**provenance, **how.provenance()})
    out = to_anndata(parts, z, req.frame, how, rng=rng, uns={**provenance, **how.provenance()},
                     names=names_prefix(run_id, how, req.frame), sparse=sparse)
    if from_ is not None:
        out.obs["translated_from"] = from_.obs_names.astype(str).to_numpy()
        out.uns["scdiff"]["strength"] = float(strength)
    return out
