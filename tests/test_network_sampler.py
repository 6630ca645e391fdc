"""The network's shapes and null tokens; the sampler's guidance as one stacked pass."""

import pytest
import torch

from scdiff import InputError
from scdiff.diffusion import Guidance, NoiseSchedule, sample_loop
from scdiff.nn import ConditionalMLP, sinusoidal_embedding


def test_sinusoidal_embedding_values():
    emb = sinusoidal_embedding(torch.tensor([0.0, 1.0]), 4)
    assert torch.allclose(emb[0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert emb[1, 0].item() == pytest.approx(torch.cos(torch.tensor(1.0)).item())
    assert emb[1, 3].item() == pytest.approx(torch.sin(torch.tensor(1e-2)).item(), rel=1e-5)


def test_network_shapes_and_conditions_matter():
    torch.manual_seed(0)
    net = ConditionalMLP(20, n_categories=[3, 2], n_doses=1, width=16, depth=2)
    for p in net.parameters():  # move the zero-initialised gates so conditions act
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(4, 20), torch.full((4,), 10)
    cats = torch.tensor([[0, 0], [1, 0], [3, 2], [0, 1]])  # row 2: both null tokens
    doses = torch.tensor([[0.1], [0.1], [float("nan")], [0.1]])
    out = net(x, t, cats, doses)
    assert out.shape == (4, 20) and torch.isfinite(out).all()
    same_x = net(x[:1].repeat(2, 1), t[:2], cats[:2], doses[:2])
    assert not torch.allclose(same_x[0], same_x[1])
    assert net.null_codes.tolist() == [3, 2]


def test_guidance_passes():
    assert Guidance(("a", "b"), 1.0).passes() == [((True, True), 1.0)]
    assert Guidance(("a", "b"), 3.0).passes() == [((True, True), 3.0), ((False, False), -2.0)]
    per = Guidance(("a", "b"), {"a": 2.0, "b": 1.0}).passes()
    assert per == [((True, False), 2.0), ((False, True), 1.0), ((False, False), -2.0)]
    with pytest.raises(InputError, match="not trained on"):
        Guidance(("a",), {"zzz": 1.0}).passes()


def test_guidance_guides_a_paired_dose_with_its_drug():
    attrs = ("cell_type", "drug", "dose")
    g = Guidance(attrs, {"cell_type": 1.0, "drug": 1.5}, pairs={"dose": "drug"})
    # cell type alone, drug with its dose, and the null pass (coefficients sum to 1)
    assert g.passes() == [((True, False, False), 1.0), ((False, True, True), 1.5),
                          ((False, False, False), -1.5)]
    same = Guidance(attrs, {"drug": 1.5, "dose": 1.5}, pairs={"dose": "drug"}).passes()
    assert same == [((True, False, False), 1.0), ((False, True, True), 1.5), ((False, False, False), -1.5)]
    with pytest.raises(InputError, match="a dose is guided with its drug"):
        Guidance(attrs, {"drug": 1.5, "dose": 3.0}, pairs={"dose": "drug"}).passes()
    # an unpaired dose keeps a pass of its own
    alone = Guidance(attrs, {"drug": 2.0}).passes()
    assert alone == [((True, False, False), 1.0), ((False, True, False), 2.0),
                     ((False, False, True), 1.0), ((False, False, False), -3.0)]
    # one number still means all attributes together
    assert Guidance(attrs, 2.0, pairs={"dose": "drug"}).passes() == [((True,) * 3, 2.0), ((False,) * 3, -1.0)]


class CountingNet(torch.nn.Module):
    """Predicts a constant per pass and counts forward calls and batch sizes."""

    n_genes = 3
    null_codes = torch.tensor([4])  # the attribute's null token (what the unconditional pass gets)

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, cats, doses):
        self.calls.append(x.shape[0])
        return (cats[:, :1].float() == 0).float().expand(-1, 3) * 0.0 + cats[:, :1].float()


def test_cfg_is_one_batched_forward_per_step():
    net = CountingNet()
    sched = NoiseSchedule(100, "linear", "x0")
    cats = torch.zeros(5, 1, dtype=torch.long)
    doses = torch.zeros(5, 0)
    g = torch.Generator().manual_seed(0)
    x = sample_loop(net, sched, cats, doses, guidance=Guidance(("c",), 2.0),
                    steps=10, eta=0.0, generator=g)
    assert net.calls == [10] * 10  # one forward of the doubled batch per step
    # x0 prediction: cond pass says 0, null pass says 4 -> guided 0 + 2 * (0 - 4) + 4 = -4
    assert torch.allclose(x, torch.full((5, 3), -4.0), atol=1e-5)
