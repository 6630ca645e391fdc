"""Conditional residual MLP: the network that predicts the diffusion target (eps, x0 or v,
as the schedule's ``prediction`` says) from (x_t, t, c).

Pure torch: knows nothing of AnnData. Conditions arrive as integer codes (one
column per categorical attribute, the last code of each being its learned null
token) and float doses (one column per continuous attribute, NaN meaning "no
dose given", replaced by a learned null embedding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scdiff.nn._conditions import ConditionEmbedding, perturbations
from scdiff.nn._dose import sinusoidal_embedding
from scdiff.nn._mean import MeanModel


class ResidualBlock(nn.Module):
    """LayerNorm -> Linear -> SiLU -> Linear, modulated by the condition (adaLN-Zero).

    The gate starts at zero so every block begins as the identity (Peebles & Xie 2023).
    """

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.ff = nn.Sequential(
            nn.Linear(width, width * 2), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width * 2, width)
        )
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(cond).chunk(3, dim=-1)
        return h + gate * self.ff(self.norm(h) * (1 + scale) + shift)


class ConditionalMLP(ConditionEmbedding):
    """Residual MLP predicting the diffusion target from (x_t, t, conditions).

    Parameters
    ----------
    n_genes
        Input and output width.
    n_categories
        For each categorical attribute, its number of categories (a null token is added).
    n_doses
        Number of continuous attributes.
    width, depth
        Hidden width and number of residual blocks.
    dropout
        Dropout inside each block.
    dose_encoder
        How doses are encoded: one of :data:`DOSE_ENCODERS` (see :class:`DoseEncoder`).
    dose_pairs
        For each dose, the index of the categorical attribute it interacts with (the
        drug whose dose it is), or -1 for none.
    additive
        Add an additive path (CPA-like): the attributes' embeddings, summed and mapped
        linearly to gene space, add an offset ``g(t) W sum_c e_c`` to the output, the gate
        ``g`` a learned function of the timestep (the factor that turns a shift of the
        clean cells' mean into the prediction target's units, about ``-sigma_t`` for v).
        Main effects then add up across attributes by construction, which is what a
        combination never measured needs; the blocks learn the rest (interactions, the
        shape of each condition's distribution). Measured in docs/perturbation.md.
    slots
        For each categorical attribute, how many of its categories one cell can hold at
        once (a set of drugs: ``drugA+drugB`` is 2); default 1 each. An attribute of ``s``
        slots takes ``s`` code columns (the null code in a column past the first is "no
        member"), embedded as the sum of its members' embeddings (order-free), and a dose
        paired with it takes ``s`` dose columns, one per member.
    features
        For each categorical attribute, ``None`` or its categories' features (``{"table":
        K x F, "seen": K flags}``): the attribute is then embedded from its features
        (:class:`~scdiff.nn.FeatureEmbedding`), and so is the curve of a dose paired
        with it, so that a category never measured can be generated.
    feature_noise
        Noise added to described categories' features in training
        (:class:`~scdiff.nn.FeatureEmbedding`).
    drug_offset
        Whether a categorical attribute with a paired dose (the drug) adds its own embedding
        to the additive path, an offset at any dose. Without (``False``), a drug enters
        the additive path through its dose's encoding alone, which is zero at dose 0 (as
        in CPA): a drug never measured then gets no offset its features would have to
        predict at every dose.
    mean
        Options of a :class:`~scdiff.nn.MeanModel` (``{}`` for its defaults), or ``None``
        (none). With one, the network models each cell's departure from its condition's
        mean ``mu(c)``: it sees ``x_t - a_t mu(c)`` and its output gets ``b_t mu(c)`` added,
        exactly the diffusion of ``x_0 - mu(c)`` (``shift`` gives ``a_t`` and ``b_t``). The
        mean model is fitted first and then held fixed (:func:`scdiff.train.fit_mean`);
        this replaces the additive path, with main effects that add up exactly.
    shift
        ``(a, b)``, one value per timestep each, from
        :meth:`scdiff.diffusion.NoiseSchedule.mean_shift`; needed with ``mean``.

    Examples
    --------
    >>> net = ConditionalMLP(50, n_categories=[3], n_doses=1, width=64, depth=2)
    >>> x = torch.randn(8, 50); t = torch.randint(0, 1000, (8,))
    >>> net(x, t, torch.zeros(8, 1, dtype=torch.long), torch.rand(8, 1)).shape
    torch.Size([8, 50])
    """

    def __init__(
        self,
        n_genes: int,
        n_categories: Sequence[int] = (),
        n_doses: int = 0,
        width: int = 512,
        depth: int = 4,
        dropout: float = 0.0,
        time_dim: int = 128,
        dose_encoder: str = "sinusoidal",
        dose_pairs: Sequence[int] = (),
        additive: bool = False,
        slots: Sequence[int] = (),
        features: Sequence[dict | None] = (),
        feature_noise: float = 0.0,
        drug_offset: bool = True,
        mean: dict | None = None,
        shift: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width)
        )
        # with a mean model, the blocks see no perturbation (docs/perturbation.md): it acts
        # through the mean, and its embedding would let the blocks relearn each measured
        # condition's own sample mean, which they carry, wrongly, to conditions never measured
        skip = () if mean is None else perturbations(len(n_categories), list(dose_pairs) or [-1] * n_doses)
        self._init_conditions(n_categories, n_doses, width, dose_encoder=dose_encoder,
                              dose_pairs=dose_pairs, slots=slots, features=features,
                              feature_noise=feature_noise, skip=skip)
        self.cond_act = nn.SiLU()
        self.input = nn.Linear(n_genes, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, n_genes)
        # A per-gene skip from x_t, gated by the condition (time mostly): the hidden width is
        # usually below the number of genes, and without it the network cannot pass x_t
        # through, which eps-prediction at high noise needs (its error floors at 1 - width/genes).
        self.skip = nn.Linear(width, n_genes)
        nn.init.zeros_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)
        n_attributes = len(self.embeddings) + len(self.dose_encoders)
        self.additive = bool(additive) and n_attributes > 0  # nothing to add without conditions
        if self.additive:
            # one map for all attributes: the embeddings are free, so a map per attribute
            # adds cost (a width x genes product each), not reach (docs/perturbation.md)
            self.offset = nn.Linear(width, n_genes, bias=False)
            nn.init.zeros_(self.offset.weight)
            # the offsets start at zero; a gate that does not lets them learn from step one
            self.offset_gate = nn.Linear(width, 1)
            nn.init.zeros_(self.offset_gate.weight)
            nn.init.constant_(self.offset_gate.bias, -0.5)
        self.drug_offset = bool(drug_offset)
        self.mean = None
        if mean is not None:
            if shift is None or len(shift) != 2 or len(shift[0]) != len(shift[1]):
                raise ValueError("a network with a mean model needs shift = (a, b), one value of each "
                                 "per timestep (NoiseSchedule.mean_shift()).")
            self.mean = MeanModel(n_genes, n_categories, n_doses, width, dose_encoder=dose_encoder,
                                  dose_pairs=dose_pairs, slots=slots, features=features,
                                  feature_noise=feature_noise, **mean)
            self.register_buffer("shift_a", torch.as_tensor(shift[0], dtype=torch.float32), persistent=False)
            self.register_buffer("shift_b", torch.as_tensor(shift[1], dtype=torch.float32), persistent=False)

    def train(self, mode: bool = True) -> ConditionalMLP:
        """As :meth:`torch.nn.Module.train`, except the mean model, which is fitted in a phase
        of its own (:func:`scdiff.train.fit_mean`) and always evaluated within the network:
        in training mode it would draw its feature noise and drop its drugs' residuals, so
        the diffusion would learn departures from a mean other than the one it samples with."""
        super().train(mode)
        if self.mean is not None:
            self.mean.eval()
        return self

    def condition(self, time: torch.Tensor, parts: list[torch.Tensor]) -> torch.Tensor:
        """The blocks' conditioning vector: the time embedding plus every attribute's."""
        cond = time
        for part in parts:
            if part is not None:  # an attribute the blocks do not see
                cond = cond + part
        return self.cond_act(cond)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cats: torch.Tensor, doses: torch.Tensor
    ) -> torch.Tensor:
        time = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        if self.mean is not None:  # the diffusion of x_0 - mu(c): x_t shifted in, mu's part out
            mu = self.mean(cats, doses).to(x.dtype)
            x = x - self.shift_a[t.long()].to(x.dtype)[:, None] * mu
        parts = self.attributes(cats, doses)
        cond = self.condition(time, parts)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, cond)
        out = self.output(self.out_norm(h)) + self.skip(cond) * x
        if self.additive:
            out = out + self.offset_gate(time) * self.offset(self._additive(parts))
        if self.mean is not None:
            out = out + self.shift_b[t.long()].to(out.dtype)[:, None] * mu
        return out

    def _additive(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """What the additive path maps to gene space: every attribute's embedding (without a
        drug's own where ``drug_offset`` is off: its dose's encoding carries it)."""
        skip = set() if self.drug_offset else {p for p in self.dose_pairs if p >= 0}
        return sum(part for i, part in enumerate(parts) if i not in skip and part is not None)
