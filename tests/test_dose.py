"""Dose encoders, the drug-by-dose pairing, the additive path, covariates with negative values, dropout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from scdiff.data import ConditionEncoder
from scdiff.model._conditions import dose_pairs
from scdiff.nn import DOSE_ENCODERS, ConditionalMLP, DoseEncoder, sinusoidal_embedding
from scdiff.train import drop_conditions


@pytest.mark.parametrize("kind", DOSE_ENCODERS)
def test_dose_encoder_null_and_pairing(kind):
    torch.manual_seed(0)
    enc = DoseEncoder(8, kind=kind, n_pair=3)
    with torch.no_grad():
        enc.null.fill_(7.0)
        d = torch.tensor([0.3, 0.3, float("nan")])
        out = enc(d, torch.tensor([0, 1, 0]))
    assert out.shape == (3, 8)
    assert torch.all(out[2] == 7.0)  # NaN means "no dose": the null embedding
    assert not torch.allclose(out[0], out[1])  # the drug changes the encoding of one dose


def test_sigmoid_encoder_is_zero_at_dose_zero_and_monotone():
    enc = DoseEncoder(4, kind="sigmoid")
    with torch.no_grad():
        out = enc(torch.tensor([0.0, 0.2, 0.5, 0.9]))
    assert torch.allclose(out[0], torch.zeros(4))
    scale = out[1:, 0] / enc.direction.weight[0, 0]
    assert torch.all(scale[1:] > scale[:-1])


def test_network_rejects_bad_pairs():
    with pytest.raises(ValueError, match="dose_pairs"):
        ConditionalMLP(10, n_categories=[2], n_doses=1, dose_pairs=[3])


def test_dose_pairs_auto_finds_the_drug():
    obs = pd.DataFrame({"cell_type": list("aabb"), "drug": ["ctrl", "X", "ctrl", "X"],
                        "dose": [0.0, 10.0, 0.0, 5.0], "score": [-1.0, 0.5, 1.0, 2.0]})
    assert dose_pairs(obs, ["cell_type", "drug"], ["dose"], "auto") == [1]
    assert dose_pairs(obs, ["cell_type", "drug"], ["score"], "auto") == [-1]
    assert dose_pairs(obs, ["cell_type", "drug"], ["dose", "score"], "cell_type") == [0, 0]


def test_negative_covariate_is_min_max_scaled():
    obs = pd.DataFrame({"S_score": [-0.5, 0.0, 1.5]})
    enc = ConditionEncoder.fit(obs, None, "S_score")
    _, doses = enc.encode(obs)
    np.testing.assert_allclose(doses[:, 0], [0.0, 0.25, 1.0], atol=1e-6)
    restored = ConditionEncoder.from_config(enc.to_config())
    np.testing.assert_allclose(restored.encode(obs)[1], doses)


def test_condition_dropout_is_independent_per_attribute():
    n = 20000
    cats = torch.zeros(n, 2, dtype=torch.long)
    doses = torch.ones(n, 1)
    gen = torch.Generator().manual_seed(0)
    c, d = drop_conditions(cats, doses, torch.tensor([5, 6]), 0.3, gen)
    dropped = torch.stack([c[:, 0] == 5, c[:, 1] == 6, torch.isnan(d[:, 0])], dim=1).numpy()
    # every subset of the three attributes is dropped together with probability prod(p or 1-p)
    patterns, counts = np.unique(dropped, axis=0, return_counts=True)
    assert len(patterns) == 8
    for pat, k in zip(patterns, counts, strict=True):
        expect = np.prod(np.where(pat, 0.3, 0.7)) * n
        assert abs(k - expect) < 5 * np.sqrt(expect)


def _additive_pair(seed=0):
    """Two networks built from one seed, without and with the additive path."""
    kw = dict(n_categories=[3, 2], n_doses=1, width=16, depth=1, dose_pairs=[1])
    torch.manual_seed(seed)
    plain = ConditionalMLP(12, **kw)
    torch.manual_seed(seed)
    return plain, ConditionalMLP(12, additive=True, **kw)


def test_additive_path_starts_at_zero_and_learns_from_step_one():
    plain, additive = _additive_pair()
    x, t = torch.randn(5, 12), torch.tensor([0, 10, 200, 500, 999])
    cats = torch.tensor([[0, 0], [1, 1], [2, 0], [3, 2], [0, 1]])
    doses = torch.tensor([[0.3], [0.0], [1.0], [float("nan")], [0.6]])
    # the offsets start at zero, so the network starts as the plain one, weight for weight
    assert torch.equal(plain(x, t, cats, doses), additive(x, t, cats, doses))
    additive(x, t, cats, doses).square().sum().backward()
    assert additive.offset.weight.grad.abs().sum() > 0
    assert not hasattr(plain, "offset")
    # nothing to add without conditions
    assert not ConditionalMLP(12, width=16, depth=1, additive=True).additive


def test_additive_path_is_the_gated_sum_of_the_attributes_offsets():
    _, net = _additive_pair(seed=1)
    with torch.no_grad():
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.2)
        for p in (*net.output.parameters(), *net.skip.parameters()):
            p.zero_()  # silence the blocks: what is left is the additive path alone
    x, t = torch.randn(4, 12), torch.full((4,), 300)
    # cell types a / b crossed with drugs c / d, one dose: the effects add up exactly
    cats = torch.tensor([[0, 0], [0, 1], [2, 0], [2, 1]])
    doses = torch.full((4, 1), 0.4)
    with torch.no_grad():
        out = net(x, t, cats, doses)
        assert torch.allclose(out[0] + out[3], out[1] + out[2], atol=1e-5)
        # golden value: g(t) * W (e_ct + e_drug + enc(dose, drug))
        time = net.time_mlp(sinusoidal_embedding(t, net.time_dim))
        e = (net.embeddings[0](cats[:, 0]) + net.embeddings[1](cats[:, 1])
             + net.dose_encoders[0](doses[:, 0], cats[:, 1]))
        expect = net.offset_gate(time) * (e @ net.offset.weight.T)
    assert torch.allclose(out, expect, atol=1e-5)
