"""The one sampling loop: DDPM (eta=1), DDIM (eta=0) or a multistep solver, with
classifier-free guidance.

Guidance is a linear combination of network outputs under different condition
masks (Ho & Salimans 2022; per attribute as in CFGen): all passes of one step
are stacked into one batch, so a step costs one forward pass of the stacked batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from scdiff._errors import InputError, arg
from scdiff.diffusion._schedule import NoiseSchedule
from scdiff.diffusion._solvers import UniPC

#: The multistep solvers: DPM-Solver++(2M), and UniPC (its corrector added).
MULTISTEP = ("dpm++", "unipc")
#: The largest guidance weight taken: beyond it the combination of passes loses its digits.
MAX_WEIGHT = 100.0


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance as ``sum_p coef_p * output(conditions kept in pass p)``.

    ``weights`` is one number for all attributes together
    (``out_uncond + w (out_cond - out_uncond)``) or a mapping attribute -> weight
    (``out_uncond + sum_c w_c (out_c - out_uncond)``, each pass keeping one attribute).

    ``pairs`` maps a dose to the categorical attribute it is the dose of (the drug). A
    paired dose is guided together with its drug, in the drug's pass and with the drug's
    weight: a dose means nothing without its drug, and a drug without its dose averages
    over doses. On held-out drug-cell combinations this scored higher than a pass per
    attribute (docs/perturbation.md). Naming a paired dose with another weight than its
    drug's is refused.
    """

    attributes: tuple[str, ...]
    weights: float | Mapping[str, float] = 1.0
    pairs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        weights = self.weights.values() if isinstance(self.weights, Mapping) else [self.weights]
        for w in weights:
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= MAX_WEIGHT:
                raise InputError(f"{arg('guidance', self.weights)} needs finite weights >= 0, at most "
                                 f"{MAX_WEIGHT:g} (1 is the plain conditional model, 0 the "
                                 "unconditional one; docs/fidelity.md measures 1 to 10).")

    @property
    def plain(self) -> bool:
        """Whether this is the plain conditional model (every weight 1): no extrapolation."""
        weights = self.weights.values() if isinstance(self.weights, Mapping) else [self.weights]
        return all(float(w) == 1.0 for w in weights)

    def passes(self) -> list[tuple[tuple[bool, ...], float]]:
        """(which attributes are kept, coefficient) for each forward pass, zero ones dropped."""
        k = len(self.attributes)
        if k == 0:
            return [((), 1.0)]
        if isinstance(self.weights, Mapping):
            unknown = sorted(set(self.weights) - set(self.attributes))
            if unknown:
                raise InputError(
                    f"guidance names {unknown}, which the model was not trained on; "
                    f"use one of {list(self.attributes)}."
                )
            out = []
            for unit in self._units():
                lead = self.attributes[unit[0]]
                w = float(self.weights.get(lead, 1.0))
                for j in unit[1:]:
                    dose = self.attributes[j]
                    if dose in self.weights and float(self.weights[dose]) != w:
                        raise InputError(
                            f"guidance gives dose {dose!r} the weight {self.weights[dose]} and its "
                            f"drug {lead!r} the weight {w}: a dose is guided with its drug; "
                            f"give one weight, e.g. {lead}={self.weights[dose]}."
                        )
                out.append((tuple(j in unit for j in range(k)), w))
            out.append(((False,) * k, 1.0 - sum(w for _, w in out)))
        else:
            w = float(self.weights)
            out = [((True,) * k, w), ((False,) * k, 1.0 - w)]
        return [(keep, c) for keep, c in out if c != 0.0]

    def _units(self) -> list[tuple[int, ...]]:
        """Attribute indices guided together: each attribute with the doses paired to it."""
        index = {a: i for i, a in enumerate(self.attributes)}
        paired = {index[d]: index[c] for d, c in self.pairs.items()}
        units = []
        for i in range(len(self.attributes)):
            if i in paired:
                continue
            units.append((i, *sorted(d for d, c in paired.items() if c == i)))
        return units


def _mask_conditions(
    cats: torch.Tensor, doses: torch.Tensor, keep: Sequence[bool], null_codes: torch.Tensor,
    columns: tuple[Sequence[int], Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace the dropped attributes by their null token (categorical) or NaN (dose).

    ``keep`` holds one flag per attribute (categorical ones first); ``columns`` the
    attribute of each code column and each dose column (the network's ``cat_columns`` and
    ``dose_columns``: an attribute of several slots has several), one column each if None.
    """
    cat_of, dose_of = columns or (range(cats.shape[1]), range(doses.shape[1]))
    n_cat = len(set(cat_of)) if columns else cats.shape[1]
    keep_cat = torch.tensor([keep[a] for a in cat_of], dtype=torch.bool, device=cats.device)
    keep_dose = torch.tensor([keep[n_cat + a] for a in dose_of], dtype=torch.bool, device=doses.device)
    cats = torch.where(keep_cat, cats, null_codes)
    doses = torch.where(keep_dose, doses, torch.full_like(doses, float("nan")))
    return cats, doses


@torch.no_grad()
def sample_loop(
    net: Callable[..., torch.Tensor],
    schedule: NoiseSchedule,
    cats: torch.Tensor,
    doses: torch.Tensor,
    *,
    guidance: Guidance,
    steps: int,
    eta: float,
    generator: torch.Generator,
    x_start: torch.Tensor | None = None,
    t_start: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    on_step: Callable[[], None] | None = None,
    x0_bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
    solver: str | None = None,
    invert: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run the reverse process for one batch of conditions; returns x_0 in model space.

    ``net`` is the network (it gives ``n_genes`` and the attributes' ``null_codes``).
    ``x_start``/``t_start``: begin from ``x_start`` noised to ``t_start`` instead of
    pure noise (SDEdit-style translation of given cells). ``x0_bounds`` (per-gene lower
    and upper bounds): the predicted x_0 of every step is clipped to them and the noise
    recomputed from it, so the sample stays within them (static thresholding, Saharia et
    al. 2022, per gene: what keeps large guidance weights from leaving the data's range).
    ``solver``: ``"dpm++"`` (DPM-Solver++(2M)) or ``"unipc"`` (the same with UniPC's
    corrector), multistep solvers (:class:`~scdiff.diffusion._solvers.UniPC`) on the
    trailing spacing of :meth:`NoiseSchedule.timesteps`, instead of the DDIM/DDPM step;
    ``eta`` is then unused. ``invert`` (the conditions of ``x_start``'s own cells: categorical
    codes, doses): ``x_start`` is carried to ``t_start`` along the deterministic ODE under
    those conditions (:func:`invert_to`) instead of being noised with fresh noise.
    """
    device = cats.device
    n = cats.shape[0]
    n_genes = net.n_genes  # type: ignore[attr-defined]
    null_codes = net.null_codes.to(device)  # type: ignore[attr-defined]
    if solver not in (None, *MULTISTEP):
        raise InputError(f"{arg('sampler', solver)} needs to be one of ddim, ddpm, "
                         f"{', '.join(MULTISTEP)}.")
    timesteps = schedule.timesteps(steps, trailing=solver is not None)
    if t_start is not None:
        timesteps = [t for t in timesteps if t <= t_start] or [t_start]
    noise0 = torch.randn(n, n_genes, generator=generator, device=device)
    if x_start is None:
        x = noise0
    elif invert is not None:
        plain = Guidance(guidance.attributes, 1.0, pairs=guidance.pairs)
        own = _GuidedNet(net, plain, invert[0], invert[1], null_codes, autocast_dtype)
        x = invert_to(own, schedule, x_start.to(device), timesteps[0], steps=len(timesteps))
    else:
        t0 = torch.full((n,), timesteps[0], device=device, dtype=torch.long)
        x = schedule.add_noise(x_start.to(device), noise0, t0)

    guided_output = _GuidedNet(net, guidance, cats, doses, null_codes, autocast_dtype)
    multistep = UniPC(schedule, corrector=solver == "unipc") if solver is not None else None
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        guided = guided_output(x, t)
        t_now = torch.full((n,), t, device=device)
        x0, eps = schedule.split_prediction(guided, x, t_now)
        if x0_bounds is not None:
            x0 = torch.maximum(torch.minimum(x0, x0_bounds[1]), x0_bounds[0])
            eps = schedule.eps_from_x0(x0, x, t_now)
        if multistep is not None:
            x = multistep.step(x0, x, t, t_prev)
        else:
            noise = torch.randn(x.shape, generator=generator, device=device) if eta > 0 else None
            x = schedule.step(x0, eps, x, t, t_prev, eta, noise)
        if on_step is not None:
            on_step()
    return x


def invert_to(output: Callable[[torch.Tensor, int], torch.Tensor], schedule: NoiseSchedule,
              x0: torch.Tensor, t_end: int, *, steps: int = 50) -> torch.Tensor:
    """Clean cells carried up the probability-flow ODE to timestep ``t_end`` (DDIM inversion,
    Song et al. 2021; on the flow's straight path, Euler steps from the data side).

    ``output(x, t)`` is the network's output under the cells' own conditions. ``steps``
    evenly spaced first-order steps (as many as the way back down takes) from t=0 (the
    cell itself) to ``t_end``, each from the prediction at its lower end: the noise so
    found is the cell's own, so translating back to its own conditions returns close to
    the cell, which fresh noise cannot.
    """
    ts = np.unique(np.linspace(0, t_end, max(2, min(steps, t_end) + 1)).round().astype(int)).tolist()
    x, n = x0, x0.shape[0]
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        t_now = torch.full((n,), t, device=x.device)
        pred_x0, eps = schedule.split_prediction(output(x, t), x, t_now)
        x = schedule.step(pred_x0, eps, x, t, t_next, 0.0, None)
    return x


class _GuidedNet:
    """The guided network output at a timestep: every guidance pass stacked in one batch
    (``sum_p coef_p * output(conditions of pass p)``)."""

    def __init__(self, net, guidance: Guidance, cats: torch.Tensor, doses: torch.Tensor,
                 null_codes: torch.Tensor, autocast_dtype: torch.dtype | None) -> None:
        passes = guidance.passes()
        columns = (net.cat_columns, net.dose_columns) if hasattr(net, "cat_columns") else None
        stacked = [_mask_conditions(cats, doses, keep, null_codes, columns) for keep, _ in passes]
        self.net, self.n, self.n_genes = net, cats.shape[0], net.n_genes
        self.cats = torch.cat([c for c, _ in stacked])
        self.doses = torch.cat([d for _, d in stacked])
        self.coefs = [c for _, c in passes]
        self.amp = (torch.autocast(device_type=cats.device.type, dtype=autocast_dtype)
                    if autocast_dtype is not None else contextlib.nullcontext())

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        k = len(self.coefs)
        t_batch = torch.full((self.n * k,), t, device=x.device, dtype=torch.long)
        with self.amp:
            out = self.net(x.repeat(k, 1), t_batch, self.cats, self.doses)
        out = out.float().view(k, self.n, self.n_genes)
        guided = self.coefs[0] * out[0]
        for c, o in zip(self.coefs[1:], out[1:], strict=True):
            guided = guided + c * o
        return guided
