"""Golden values of the schedule and of one sampler step, against the papers' formulas."""

import math

import numpy as np
import pytest
import torch

from scdiff import InputError
from scdiff.diffusion import NoiseSchedule, cosine_betas, linear_betas


def test_linear_betas_match_ho_et_al():
    b = linear_betas(1000, 1e-4, 0.02)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    assert b[500] == pytest.approx(1e-4 + 500 * (0.02 - 1e-4) / 999)


def test_cosine_alphas_cumprod_follow_eq_17():
    s = NoiseSchedule(1000, "cosine")
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert s.alphas_cumprod[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert cosine_betas(1000).max() <= 0.999


def test_add_noise_and_targets_roundtrip():
    s = NoiseSchedule(1000, "cosine", "v")
    x0, eps = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    t = torch.tensor([0, 3, 250, 700, 999])
    xt = s.add_noise(x0, eps, t)
    ab = torch.tensor(s.alphas_cumprod[t.numpy()])[:, None]
    assert torch.allclose(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    for pred in ("epsilon", "x0", "v"):
        s.prediction = pred
        x0_hat, eps_hat = s.split_prediction(s.target(x0, eps, t), xt, t)
        assert torch.allclose(x0_hat, x0, atol=1e-6) and torch.allclose(eps_hat, eps, atol=1e-6)


def test_one_ddim_step_golden():
    s = NoiseSchedule(1000, "linear")
    x0, eps, xt = torch.tensor([[0.5]]), torch.tensor([[-1.0]]), torch.tensor([[0.2]])
    t, tp = 500, 480
    out = s.step(x0, eps, xt, t, tp, eta=0.0, noise=None)
    ab_p = s.alphas_cumprod[tp]
    expected = math.sqrt(ab_p) * 0.5 + math.sqrt(1 - ab_p) * -1.0  # eq. (12), sigma = 0
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_ddpm_step_uses_posterior_variance():
    s = NoiseSchedule(1000, "linear")
    x0, eps, xt = torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1)
    out = s.step(x0, eps, xt, 10, 9, eta=1.0, noise=torch.ones(1, 1))
    # eq. (7) of Ho et al. 2020: beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    ab, ab_prev = s.alphas_cumprod[10], s.alphas_cumprod[9]
    assert out.item() == pytest.approx(math.sqrt(s.betas[10] * (1 - ab_prev) / (1 - ab)), rel=1e-6)


def test_timesteps_and_config():
    s = NoiseSchedule(1000)
    ts = s.timesteps(50)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and ts == sorted(ts, reverse=True)
    assert NoiseSchedule.from_config(s.to_config()).to_config() == s.to_config()
    with pytest.raises(InputError):
        s.timesteps(0)
    with pytest.raises(InputError):
        NoiseSchedule(schedule="quadratic")
    assert np.all(np.diff(s.alphas_cumprod) < 0)


def test_loss_weights_against_the_formulas():
    """x0-error factor of each target: v 1+SNR, epsilon SNR, x0 1; weights rescale it."""
    t = torch.tensor([0, 100, 500, 900, 999])
    gamma = 5.0
    v = NoiseSchedule(1000, "cosine", "v")
    ab = v.alphas_cumprod[t.numpy()]
    snr = ab / (1 - ab)
    def w(s, kind):
        return s.loss_weight(t, kind, gamma).double().numpy()
    np.testing.assert_allclose(w(v, "none"), 1.0)
    np.testing.assert_allclose(w(v, "snr_cap"), np.minimum(1.0, (1 + gamma) / (1 + snr)), rtol=1e-5)
    np.testing.assert_allclose(w(v, "min_snr"), np.minimum(snr, gamma) / (snr + 1), rtol=1e-5)
    # the weighted v loss is the x0 error times min(1 + SNR, 1 + gamma) (snr_cap) or min(SNR, gamma)
    assert w(v, "snr_cap")[0] * (1 + snr[0]) == pytest.approx(1 + gamma, rel=1e-4)
    assert w(v, "snr_cap")[3] == 1.0 and w(v, "min_snr")[3] == pytest.approx(snr[3] / (1 + snr[3]), rel=1e-4)
    eps = NoiseSchedule(1000, "cosine", "epsilon")
    np.testing.assert_allclose(w(eps, "min_snr"), np.minimum(1.0, gamma / snr), rtol=1e-5)
    np.testing.assert_allclose(w(eps, "snr_cap"), w(eps, "min_snr"))
    x0 = NoiseSchedule(1000, "cosine", "x0")
    np.testing.assert_allclose(w(x0, "snr_cap"), 1.0)
    np.testing.assert_allclose(w(x0, "min_snr"), np.minimum(snr, gamma), rtol=1e-5)
    with pytest.raises(InputError, match="loss_weighting='p2'"):
        v.loss_weight(t, "p2", gamma)


def test_dpm_solver_and_unipc_steps_golden():
    """DPM-Solver++(2M), Lu et al. 2022: first order is the DDIM step; second order uses the
    previous x_0 with r = h_last / h. UniPC (Zhao et al. 2023, B(h) = e^-h - 1) predicts
    the same and corrects the sample with the x_0 predicted at it."""
    from scdiff.diffusion._solvers import UniPC

    s = NoiseSchedule(1000, "cosine", "v")
    x0_last, x0, x0_next = torch.tensor([[0.2]]), torch.tensor([[0.5]]), torch.tensor([[0.6]])
    x_last, tl, t, tp = torch.tensor([[0.1]]), 800, 600, 400
    a, sg = s.sqrt_alphas_cumprod, s.sqrt_one_minus_alphas_cumprod
    lam = np.log(a / sg)
    dpm = UniPC(s, corrector=False)
    xt = dpm.step(x0_last, x_last, tl, t)
    eps = (0.1 - a[tl] * 0.2) / sg[tl]
    assert xt.item() == pytest.approx(a[t] * 0.2 + sg[t] * eps, rel=1e-6)  # first order = DDIM
    second = dpm.step(x0, xt, t, tp)
    h, h_last = lam[tp] - lam[t], lam[t] - lam[tl]
    d = (1 + h / (2 * h_last)) * 0.5 - h / (2 * h_last) * 0.2
    expected = sg[tp] / sg[t] * xt.item() - a[tp] * (np.exp(-h) - 1) * d
    assert second.item() == pytest.approx(expected, rel=1e-6)
    assert dpm.step(x0_next, second, tp, -1).item() == pytest.approx(0.6)  # into the clean cell

    uni = UniPC(s)
    assert uni.step(x0_last, x_last, tl, t).item() == pytest.approx(xt.item(), rel=1e-6)
    corrected = uni.step(x0, xt, t, tp)  # corrects xt with x0 (order 1: rho = 1/2), then predicts
    hc = lam[t] - lam[tl]
    xt_c = sg[t] / sg[tl] * 0.1 - a[t] * np.expm1(-hc) * 0.2 - a[t] * np.expm1(-hc) * 0.5 * (0.5 - 0.2)
    assert uni.last[0].item() == pytest.approx(xt_c, rel=1e-6)
    expected_c = sg[tp] / sg[t] * xt_c - a[tp] * (np.exp(-h) - 1) * d
    assert corrected.item() == pytest.approx(expected_c, rel=1e-6)


def test_timestep_spacings():
    """DDIM's spacing ends at t=0; the trailing one (the multistep solver's) ends one
    interval above it and then goes into the clean cell, so every call moves the cell."""
    s = NoiseSchedule(1000, "cosine", "v")
    assert s.timesteps(5) == [999, 749, 500, 250, 0]
    assert s.timesteps(5, trailing=True) == [999, 799, 599, 399, 199]
    assert s.timesteps(3, trailing=True) == [999, 666, 332]
    assert s.timesteps(1000, trailing=True) == list(range(999, -1, -1))
    assert s.timesteps(1, trailing=True) == [999]


def test_flow_schedule_path_targets_and_weights():
    f = NoiseSchedule(1000, "flow", "flow")
    x0, eps = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    t = torch.tensor([0, 249, 749, 999])
    s = (t.double() + 1)[:, None] / 1000
    xt = f.add_noise(x0, eps, t)
    assert torch.allclose(xt, (1 - s) * x0 + s * eps)  # the straight path
    assert torch.allclose(f.target(x0, eps, t), eps - x0)
    x0_hat, eps_hat = f.split_prediction(eps - x0, xt, t)
    assert torch.allclose(x0_hat, x0, atol=1e-9) and torch.allclose(eps_hat, eps, atol=1e-9)
    w = f.loss_weight(torch.arange(1000), "snr_cap", 5.0).numpy()
    snr = f.snr_values
    np.testing.assert_allclose(w, np.minimum(1.0, (np.sqrt(5) + 1) ** 2 / (np.sqrt(snr) + 1) ** 2), rtol=1e-5)
    with pytest.raises(InputError, match="pairs schedule='flow' with prediction='flow'"):
        NoiseSchedule(1000, "flow", "v")
    with pytest.raises(InputError, match="sampler='ddpm' needs a diffusion schedule"):
        f.step(x0, eps, xt, 10, 9, eta=1.0, noise=eps)
