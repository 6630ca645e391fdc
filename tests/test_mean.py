"""The mean model of a perturbation design (issue 20): a condition's mean cell whose main
effects add up, fitted first; the diffusion of each cell's departure from it."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import scdiff
from scdiff.diffusion import NoiseSchedule
from scdiff.nn import ConditionalMLP, DoseEncoder, MeanModel
from scdiff.train._mean import ConditionMeans, fit_mean, mean_loss

PREDICTIONS = [("cosine", "v"), ("cosine", "epsilon"), ("linear", "x0"), ("flow", "flow")]


@pytest.mark.parametrize(("schedule", "prediction"), PREDICTIONS)
def test_mean_shift_makes_the_target_of_the_departure_from_a_mean(schedule, prediction):
    """target(x0) = target_r(r) + b_t mu for r = x0 - mu, with r's noisy cell x_t - a_t mu:
    a network of the departure gives the schedule's target exactly (every prediction)."""
    sched = NoiseSchedule(50, schedule, prediction)
    a, b = (torch.as_tensor(v, dtype=torch.float64) for v in sched.mean_shift())
    gen = torch.Generator().manual_seed(0)
    x0, mu, noise = (torch.randn(6, 5, generator=gen, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0, 7, 20, 33, 45, 49])
    x_t, r = sched.add_noise(x0, noise, t), x0 - mu
    assert torch.allclose(x_t - a[t, None] * mu, sched.add_noise(r, noise, t))
    assert torch.allclose(sched.target(x0, noise, t), sched.target(r, noise, t) + b[t, None] * mu)


def test_mean_shift_golden_values():
    sched = NoiseSchedule(1000, "cosine", "v")
    a, b = sched.mean_shift()
    assert np.allclose(a, sched.sqrt_alphas_cumprod) and np.allclose(b, -sched.sqrt_one_minus_alphas_cumprod)
    assert np.allclose(a**2 + b**2, 1.0)
    assert set(NoiseSchedule(10, "cosine", "epsilon").mean_shift()[1]) == {0.0}
    assert set(NoiseSchedule(10, "cosine", "x0").mean_shift()[1]) == {1.0}


KW = dict(n_categories=[2, 3], n_doses=1, width=16, dose_encoder="sigmoid", dose_pairs=[1])
# line 0 / 1; drug 0 (the control, dose 0), drugs 1 and 2; code 3 is the drug's null token


def _randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return module.eval()


def test_mean_model_is_zero_response_at_dose_zero_and_reads_no_drug_embedding():
    mean = _randomised(MeanModel(7, **KW))
    cats = torch.tensor([[0, 0], [0, 1], [0, 2], [1, 2]])
    with torch.no_grad():
        mu = mean(cats, torch.zeros(4, 1))
    # at dose 0 every drug is the control of its line: a drug acts through its dose alone
    assert torch.allclose(mu[0], mu[1]) and torch.allclose(mu[0], mu[2]) and not torch.allclose(mu[0], mu[3])
    assert not any(name.startswith("embeddings.1.") for name, _ in mean.named_parameters())


def test_mean_model_main_effects_add_up_and_the_line_scales_the_response():
    mean = _randomised(MeanModel(7, **KW))
    with torch.no_grad():
        mean.gain.weight.zero_()
        mean.gain.bias.zero_()  # no sensitivity per line: a drug's effect is the same in both lines
        cats = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
        mu = mean(cats, torch.tensor([[0.0], [0.6], [0.0], [0.6]]))
        assert torch.allclose(mu[1] - mu[0], mu[3] - mu[2], atol=1e-6)
        _randomised(mean.gain, seed=3)
        mu = mean(cats, torch.tensor([[0.0], [0.6], [0.0], [0.6]]))
        assert not torch.allclose(mu[1] - mu[0], mu[3] - mu[2], atol=1e-3)
        # golden: bias + W (e_line + r(d) * (1 + G e_line))
        e = mean.embeddings[0](cats[:, 0])
        r = mean.dose_encoders[0](torch.tensor([0.0, 0.6, 0.0, 0.6]), cats[:, 1])
        expect = mean.bias + (e + r * (1 + mean.gain(e))) @ mean.project.weight.T
    assert torch.allclose(mu, expect, atol=1e-6)


def test_network_with_a_mean_model_reads_the_drug_only_through_the_mean():
    sched = NoiseSchedule(100, "cosine", "v")
    net = _randomised(ConditionalMLP(7, depth=1, mean={}, shift=sched.mean_shift(), **KW))
    assert not any(name.startswith(("embeddings.1.", "dose_encoders.")) for name, _ in net.named_parameters())
    x, t = torch.randn(3, 7), torch.tensor([5, 50, 95])
    cats = torch.tensor([[0, 1], [0, 2], [0, 0]])
    doses = torch.tensor([[0.5], [0.9], [0.0]])
    with torch.no_grad():
        out = net(x, t, cats, doses)
        assert not torch.allclose(out[0], net(x[:1], t[:1], cats[1:2], doses[1:2])[0])
        for p in net.mean.parameters():
            p.zero_()  # every condition the same mean: the drug no longer changes the output
        base = net(x, t, cats[2:3].expand(3, -1), doses[2:3].expand(3, -1))
        assert torch.allclose(net(x, t, cats, doses), base)
    with pytest.raises(ValueError, match="shift"):
        ConditionalMLP(7, depth=1, mean={}, **KW)


def test_condition_means_pool_cells_per_condition_given_block_by_block():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    codes = np.array([[0, 1], [0, 1], [1, 2], [0, 1], [1, 2], [1, 0]])
    doses = np.array([[0.5, np.nan], [0.5, np.nan], [0.2, 0.3], [0.5, np.nan], [0.2, 0.3], [0.0, np.nan]],
                     dtype=np.float32)
    groups = ConditionMeans.of_blocks([x[:4], x[4:]], codes, doses)
    assert len(groups) == 3 and groups.counts.tolist() == [3.0, 1.0, 2.0]
    assert np.allclose(groups.means, [[8 / 3, 11 / 3], [10.0, 11.0], [6.0, 7.0]])
    assert groups.cats.tolist() == [[0, 1], [1, 0], [1, 2]]
    assert np.isnan(groups.doses[0, 1]) and groups.doses[2].tolist() == pytest.approx([0.2, 0.3])
    with pytest.raises(ValueError, match="blocks hold"):
        ConditionMeans.of_blocks([x[:4]], codes, doses)


def _lines_and_a_drug() -> ConditionMeans:
    """Two lines x a drug at four doses, the drug's response twice as strong in line 1."""
    rng = np.random.default_rng(0)
    line_effect, drug_effect = rng.normal(size=(2, 7)), rng.normal(size=7)
    rows, x = [], []
    for line in (0, 1):
        for dose in (0.0, 0.25, 0.5, 1.0):
            for _ in range(20):
                rows.append((line, 1 if dose else 0, dose))
                response = drug_effect * (0.5 + line) * dose / (0.3 + dose)
                x.append(line_effect[line] + response + 0.1 * rng.normal(size=7))
    codes = np.array([[r[0], r[1]] for r in rows])
    doses = np.array([[r[2]] for r in rows], dtype=np.float32)
    return ConditionMeans.of_blocks([np.array(x, dtype=np.float32)], codes, doses)


def test_fit_mean_recovers_additive_condition_means():
    """The fitted means match the cells' own, seeded."""
    groups = _lines_and_a_drug()
    torch.manual_seed(0)
    mean = MeanModel(7, **KW)
    before = mean_loss(mean, groups)
    losses = fit_mean(mean, groups, steps=600, seed=0)
    # down to the noise of the cells' own means (0.1^2 / 20 = 5e-4), from a hundred times more
    assert before > 0.1 and losses[-1] < 1e-3 and losses[-1] == pytest.approx(mean_loss(mean, groups))
    again = fit_mean(MeanModel(7, **KW), groups, steps=600, seed=0)
    assert again == losses  # the same on every run of a seed


def test_fit_mean_holds_the_gain_back_by_its_penalty():
    """The ridge penalty on the covariates' gain: a smaller gain for the same data."""
    groups = _lines_and_a_drug()

    def gain_norm(l2: float) -> float:
        torch.manual_seed(0)
        mean = MeanModel(7, **KW)
        fit_mean(mean, groups, steps=300, seed=0, gain_l2=l2)
        return float(sum((p ** 2).sum() for p in mean.gain.parameters()))

    assert gain_norm(1.0) < 0.5 * gain_norm(0.0)


def _design(n: int = 8, seed: int = 0) -> ad.AnnData:
    """Two cell types x control and two drugs at two doses, counts; type b x drug y held out."""
    rng = np.random.default_rng(seed)
    genes = 30
    base = rng.normal(1.5, 0.4, size=(2, genes))
    effect = {"x": rng.normal(0, 0.8, genes), "y": rng.normal(0, 0.8, genes)}
    obs, rates = [], []
    for ct in ("a", "b"):
        for drug, dose in [("control", 0.0), ("x", 10.0), ("x", 100.0), ("y", 10.0), ("y", 100.0)]:
            if (ct, drug) == ("b", "y"):
                continue
            response = 0.0 if drug == "control" else effect[drug] * dose / (30 + dose)
            for _ in range(n):
                obs.append((ct, drug, dose))
                rates.append(np.exp(base[int(ct == "b")] + response))
    counts = rng.poisson(np.array(rates) * 4).astype(np.float32)
    frame = pd.DataFrame(obs, columns=["cell_type", "drug", "dose"])
    adata = ad.AnnData(counts, obs=frame.set_axis([f"c{i}" for i in range(len(frame))]))
    adata.var_names = [f"g{i}" for i in range(genes)]
    return adata


def test_a_perturbation_design_trains_its_mean_model_first_and_keeps_it(tmp_path):
    adata = _design()
    model = scdiff.ConditionalDiffusion(adata, condition=["cell_type", "drug"], dose="dose",
                                        width=32, depth=1)
    config = model.parts.network_config
    assert config["mean"] == {} and config["additive"] is False
    assert model.network.mean is not None
    model.train(steps=30, progress=False, seed=0)
    assert not any(p.requires_grad for p in model.network.mean.parameters())
    fitted = {k: v.clone() for k, v in model.network.mean.state_dict().items()}
    # the fitted means: closer to the cells' own condition means than the untrained model's
    torch.manual_seed(0)
    fresh = model.parts.build_network().mean.eval()
    codes, doses = model.parts.encoder.encode(adata.obs, where="x")
    x = model.parts.preprocessor.transform(model.parts.preprocessor.log_expression(adata))
    groups = ConditionMeans.of_blocks([x], codes, doses)
    assert mean_loss(model.network.mean, groups) < 0.5 * mean_loss(fresh, groups)
    # the held-out combination is generated (a warning says so, without guidance advice: the
    # mean model composes it); the run keeps the mean model through save / load
    with pytest.warns(scdiff.ScdiffWarning, match=r"never seen in training \(cell_type=b, drug=y\)[^O]*$"):
        model.sample(n_cells=2, condition={"cell_type": "b", "drug": "y"}, dose={"dose": 100})
    fake = model.sample(n_cells=20, condition={"cell_type": "b", "drug": "y"}, dose={"dose": 100}, seed=1)
    assert fake.shape == (20, 30)
    model.save(tmp_path / "run")
    loaded = scdiff.ConditionalDiffusion.load(tmp_path / "run")
    assert all(torch.equal(v, loaded.network.mean.state_dict()[k]) for k, v in fitted.items())
    again = loaded.sample(n_cells=20, condition={"cell_type": "b", "drug": "y"}, dose={"dose": 100}, seed=1)
    assert np.allclose(fake.X, again.X)


def test_designs_without_a_paired_dose_keep_the_additive_path():
    adata = _design()
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 2, "p", "q")
    model = scdiff.ConditionalDiffusion(adata, condition=["cell_type", "batch"], width=32, depth=1)
    assert model.parts.network_config["additive"] is True and "mean" not in model.parts.network_config
    off = scdiff.ConditionalDiffusion(adata, condition=["cell_type", "drug"], dose="dose", additive=False,
                                      width=32, depth=1)
    assert "mean" not in off.parts.network_config and off.network.mean is None


def test_a_described_drug_reaches_the_mean_model_with_noisy_features_and_no_offset():
    """With drug features, the mean model's fit sees them with noise; the additive path's
    drug-offset switch is not in the config of a model that has no additive path."""
    adata = _design()
    table = pd.DataFrame({"potency": [1.0, -0.5], "target": [0.2, 0.9]}, index=["x", "y"])
    model = scdiff.ConditionalDiffusion(adata, condition=["cell_type", "drug"], dose="dose",
                                        condition_features={"drug": table}, width=32, depth=1)
    config = model.parts.network_config
    assert config["mean"] == {} and "drug_offset" not in config
    assert config["feature_noise"] == model.network.mean.embeddings[1].noise > 0


def test_interrupt_then_resume_keeps_the_fitted_mean_bit_for_bit(tmp_path, monkeypatch):
    """A resumed run does not refit the mean model: it comes back with the diffusion's
    checkpoint, and the result is the uninterrupted run's, bit for bit (CPU)."""
    import scdiff.model._fit as m
    from tests.test_resume import _stop_after

    adata = _design()
    kw = dict(steps=40, batch_size=16, progress=False, seed=2, checkpoint_every=15)

    def model():
        return scdiff.ConditionalDiffusion(adata, condition=["cell_type", "drug"], dose="dose",
                                           width=32, depth=1)

    ref = model().train(**kw)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(m, "graceful_stop", lambda: _stop_after(25))
    with pytest.raises(scdiff.TrainingInterrupted):
        model().train(checkpoint_dir=run, **kw)
    monkeypatch.undo()
    import scdiff.model._train as t

    refits = []
    monkeypatch.setattr(t, "fit_condition_means", lambda *a, **k: refits.append(1))
    resumed = model().train(checkpoint_dir=run, resume=True, **kw)
    assert refits == []
    for key, value in ref.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key


def test_a_perturbation_design_keeps_its_mean_model_in_a_forced_pca_space():
    """``space="pca"`` (asked for; ``auto`` keeps gene space for this design): the mean model
    is fitted in the PCA latent, and the unseen combination comes back in gene space."""
    adata = _design()
    model = scdiff.ConditionalDiffusion(adata, condition=["cell_type", "drug"], dose="dose",
                                        space="pca", latent_dim=4, width=32, depth=1)
    assert model.space.kind == "pca" and model.network.mean is not None
    model.train(steps=30, progress=False, seed=0)
    assert not any(p.requires_grad for p in model.network.mean.parameters())
    with pytest.warns(scdiff.ScdiffWarning, match="never seen in training"):
        fake = model.sample(n_cells=10, condition={"cell_type": "b", "drug": "y"}, dose={"dose": 100}, seed=0)
    assert fake.shape == (10, 30) and np.isfinite(fake.X).all()


# -- sets: a measured pair's interaction, an unmeasured pair's members adding up -----------------

SET_KW = dict(n_categories=[2, 4], n_doses=1, width=16, dose_encoder="sigmoid", dose_pairs=[1], slots=[1, 2])
# line 0 / 1; drug 0 (the control), drugs 1, 2, 3, code 4 the null token; a cell holds up to two
NULL = 4


def test_only_a_measured_set_has_an_interaction_in_any_order():
    mean = _randomised(MeanModel(7, **SET_KW, sets={"1": [[2, 1]]}))  # the pair {1, 2} measured
    cats = torch.tensor([[0, 0, NULL], [0, 1, NULL], [0, 2, NULL], [0, 3, NULL],
                         [0, 1, 2], [0, 2, 1], [0, 1, 3], [0, 1, 2]])
    nan = float("nan")
    doses = torch.tensor([[0.0, nan], [0.6, nan], [0.8, nan], [0.8, nan],
                          [0.6, 0.8], [0.8, 0.6], [0.6, 0.8], [0.6, 0.0]])
    with torch.no_grad():
        mean.dose_encoders[0].slope.fill_(6.0)  # curves that rise between the doses
        mean.dose_encoders[0].mid.fill_(0.5)
        mu = mean(cats, doses)
        delta = mu - mu[0]
        assert torch.allclose(mu[4], mu[5], atol=1e-6)  # a set, in any order
        # never measured: the members' effects add up exactly
        assert torch.allclose(delta[6], delta[1] + delta[3], atol=1e-5)
        # a member at dose 0 takes the interaction away: the pair is its other member alone
        assert torch.allclose(mu[7], mu[1], atol=1e-6)
        # golden: measured, the members' sum plus s_1(0.6) s_2(0.8) times its strength along the direction
        enc, inter = mean.dose_encoders[0], mean.interactions["1"]
        s = enc.curve(torch.tensor([0.6, 0.8]), torch.tensor([1, 2]))
        q = s[0] * s[1] * inter.strength.weight[0, 0] * inter.direction.weight[:, 0]
        assert torch.allclose(delta[4], delta[1] + delta[2] + q @ mean.project.weight.T, atol=1e-5)
        assert q.abs().sum() > 0.01
    assert [name for name, _ in mean.named_parameters() if "interactions" in name] == [
        "interactions.1.strength.weight", "interactions.1.direction.weight"]
    # a dose encoder without a curve: the interaction is on wherever both members are dosed
    mlp = _randomised(MeanModel(7, **{**SET_KW, "dose_encoder": "mlp"}, sets={"1": [[1, 2]]}))
    with torch.no_grad():
        mu = mlp(cats, doses)
        inter = (mlp.interactions["1"].direction.weight[:, 0] * mlp.interactions["1"].strength.weight[0, 0])
        others = mlp(cats[[4]], doses[[4]]) - inter @ mlp.project.weight.T
        assert not torch.allclose(mu[4], others[0], atol=1e-4)
        mlp.interactions["1"].strength.weight.zero_()
        assert torch.allclose(mlp(cats[[4]], doses[[4]])[0], others[0], atol=1e-5)
        assert torch.allclose(mlp(cats[[7]], doses[[7]]), mu[[7]], atol=1e-6)  # b at dose 0: none


def test_a_dose_curve_golden_values_and_its_parts():
    enc = DoseEncoder(8, kind="sigmoid", n_pair=3, pair_features=2)
    # at first every drug's curve is slope 6, midpoint 0.5: sigmoid(6 (d - 0.5)) - sigmoid(-3)
    s = enc.curve(torch.tensor([0.0, 0.5, 1.0, float("nan")]), torch.tensor([0, 1, 2, 0]),
                  torch.randn(4, 2), torch.ones(4))
    assert s.tolist() == pytest.approx([0.0, 0.452574, 0.905148, 0.0], abs=1e-6)
    # the slope and midpoint from a linear map of the features; their residuals are the last two
    assert isinstance(enc.curve_head, torch.nn.Linear) and enc.curve_head.out_features == 2
    assert enc.curve_residuals.shape == (3, 2)
    assert DoseEncoder(8, kind="sigmoid", n_pair=3).curve_residuals is None
    with pytest.raises(ValueError, match="no dose curve"):
        DoseEncoder(8, kind="mlp").curve(torch.zeros(2))


def test_fit_mean_holds_measured_drugs_curves_to_their_features_by_its_penalty():
    groups = _lines_and_a_drug()
    features = [None, {"table": [[0.0, 1.0], [1.0, -1.0], [0.5, 0.5]], "seen": [1, 1, 1]}]

    def residual_norm(l2: float) -> float:
        torch.manual_seed(0)
        mean = MeanModel(7, **KW, features=features)
        fit_mean(mean, groups, steps=300, seed=0, curve_l2=l2)
        return float((mean.dose_encoders[0].curve_residuals.detach() ** 2).sum())

    assert residual_norm(1.0) < 0.5 * residual_norm(0.0)


def _pair_screen() -> tuple[ConditionMeans, np.ndarray]:
    """Control, drugs 1-3 alone at three doses, the pair {1, 2} with a strong interaction
    (measured at one dose), one line; and the true effect of each single drug at dose 0.5."""
    rng = np.random.default_rng(1)
    effects, interaction = rng.normal(size=(4, 7)), 2.0 * rng.normal(size=7)
    curve = lambda d: d / (0.3 + d)  # noqa: E731
    rows, means = [([0, 0, NULL], [0.0, np.nan])], [np.zeros(7)]
    for drug in (1, 2, 3):
        for dose in (0.25, 0.75, 1.0):
            rows.append(([0, drug, NULL], [dose, np.nan]))
            means.append(effects[drug] * curve(dose))
    rows.append(([0, 1, 2], [0.5, 0.5]))
    means.append((effects[1] + effects[2]) * curve(0.5) + interaction)
    codes = np.array([r[0] for r in rows])
    doses = np.array([r[1] for r in rows], dtype=np.float32)
    groups = ConditionMeans.of_blocks([np.array(means, dtype=np.float32)], codes, doses)
    return groups, effects * curve(0.5)


def test_a_measured_pairs_interaction_is_not_taken_for_its_members_effects():
    """Fitted with the pair's interaction, a member alone at the pair's dose (never measured
    alone there) is its own effect; without it, the pair's interaction leaks into its members."""
    groups, truth = _pair_screen()

    def single_error(sets) -> float:
        torch.manual_seed(0)
        mean = MeanModel(7, **{**SET_KW, "n_categories": [1, 4]}, sets=sets)
        fit_mean(mean, groups, steps=1500, seed=0)
        nan = float("nan")
        with torch.no_grad():
            mu = mean(torch.tensor([[0, 0, NULL], [0, 1, NULL], [0, 2, NULL]]),
                      torch.tensor([[0.0, nan], [0.5, nan], [0.5, nan]]))
        return float(((mu[1:] - mu[0] - torch.as_tensor(truth[1:3], dtype=torch.float32)) ** 2).mean())

    with_sets, without = single_error({"1": [[1, 2]]}), single_error(None)
    assert with_sets < 0.02 and without > 5 * with_sets


def test_the_network_evaluates_its_mean_model_in_training_mode_too():
    """Fitted first, the mean model is evaluated within the network while the diffusion
    trains: its feature noise and dropped residuals would otherwise move the mean the
    network learns departures from, away from the one it samples with."""
    features = [None, {"table": [[0.0, 1.0], [1.0, -1.0], [0.5, 0.5]], "seen": [1, 1, 1]}]
    sched = NoiseSchedule(100, "cosine", "v")
    net = _randomised(ConditionalMLP(7, depth=1, mean={}, shift=sched.mean_shift(), features=features,
                                     feature_noise=0.3, **KW))
    cats, doses = torch.tensor([[0, 1], [1, 2]] * 8), torch.full((16, 1), 0.7)
    with torch.no_grad():
        net.mean.train()  # as fit_mean leaves it while fitting: its output draws noise
        assert not torch.allclose(net.mean(cats, doses), net.mean(cats, doses))
        net.train()
        assert net.training and not net.mean.training
        assert torch.equal(net.mean(cats, doses), net.mean(cats, doses))
