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


class _GaussianOracle(torch.nn.Module):
    """The exact v of data N(mu, s^2) per gene under a schedule: what a perfect network says."""

    def __init__(self, schedule, mu, s):
        super().__init__()
        self.schedule, self.mu, self.s = schedule, mu, s
        self.n_genes, self.null_codes = mu.shape[1], torch.tensor([2])

    def forward(self, x, t, cats, doses):
        a = torch.as_tensor(self.schedule.sqrt_alphas_cumprod)[t][:, None].float()
        sig = torch.as_tensor(self.schedule.sqrt_one_minus_alphas_cumprod)[t][:, None].float()
        x0 = self.mu + a * self.s**2 / (a**2 * self.s**2 + sig**2) * (x - a * self.mu)  # E[x0 | x_t]
        eps = (x - a * x0) / sig
        return eps - x0 if self.schedule.prediction == "flow" else a * eps - sig * x0


@pytest.mark.parametrize("kind", ["cosine", "flow"])
def test_inversion_then_sampling_returns_the_cell(kind):
    """ODE inversion to t_start and the way back down under the same conditions return the
    cell (up to the steps' discretisation); fresh noise at the same strength does not."""
    sched = NoiseSchedule(1000, kind, "flow" if kind == "flow" else "v")
    mu, s = torch.linspace(-1, 1, 6)[None], torch.full((1, 6), 0.7)
    net = _GaussianOracle(sched, mu, s)
    gen = torch.Generator().manual_seed(0)
    x0 = mu + s * torch.randn(50, 6, generator=gen)
    cats, doses = torch.zeros(50, 1, dtype=torch.long), torch.zeros(50, 0)
    kw = dict(guidance=Guidance(("a",), 1.0), steps=200, eta=0.0, x_start=x0, t_start=600)
    back = sample_loop(net, sched, cats, doses, generator=gen, invert=(cats, doses), **kw)
    fresh = sample_loop(net, sched, cats, doses, generator=gen, **kw)
    assert float((back - x0).abs().mean()) < 0.01 and float((back - x0).abs().max()) < 0.05
    assert float((fresh - x0).abs().mean()) > 0.2


@pytest.mark.parametrize("kind", ["cosine", "flow"])
def test_solvers_converge_to_the_exact_ode_solution(kind):
    """For Gaussian data the probability-flow ODE is solved exactly (x_T's standard score is
    kept): at 10 steps DPM-Solver++(2M) lands closer than DDIM and UniPC closer still."""
    sched = NoiseSchedule(1000, kind, "flow" if kind == "flow" else "v")
    mu, s = torch.linspace(-1, 1, 6)[None], torch.full((1, 6), 0.5)
    net = _GaussianOracle(sched, mu, s)
    cats, doses = torch.zeros(400, 1, dtype=torch.long), torch.zeros(400, 0)
    x_T = torch.randn(400, 6, generator=torch.Generator().manual_seed(0))
    a, sig = float(sched.sqrt_alphas_cumprod[-1]), float(sched.sqrt_one_minus_alphas_cumprod[-1])
    exact = mu + s * (x_T - a * mu) / (a**2 * s**2 + sig**2) ** 0.5

    def error(steps, solver):
        out = sample_loop(net, sched, cats, doses, guidance=Guidance(("a",), 1.0), steps=steps, eta=0.0,
                          generator=torch.Generator().manual_seed(0), solver=solver)
        return float((out - exact).abs().mean())

    ddim10, dpm10, uni10, dpm50 = error(10, None), error(10, "dpm++"), error(10, "unipc"), error(50, "dpm++")
    assert dpm10 < 0.5 * ddim10 and uni10 < dpm10 and dpm50 < 0.01 and dpm50 < dpm10
