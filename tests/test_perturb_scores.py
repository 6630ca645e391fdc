"""Scores and baselines for perturbations nobody measured, on tiny hand-made data.

Every group's cells are its mean plus ``+-SPREAD`` on each gene (half of the cells each
way), so group means are exact and every gene has the same variance: Welch's t then
ranks genes as ``|change|`` does, and each golden value follows from the means alone.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scdiff import InputError
from scdiff.metrics import energy_distance
from scdiff.perturb import (
    Design,
    additive,
    evaluate_perturbation,
    linear,
    mean_perturbation,
    nearest_dose,
    no_change,
    r2_score,
    summarize,
)
from scdiff.perturb._groups import group_codes

G, N, SPREAD = 12, 6, 0.1
CTRL_A = np.linspace(1.0, 2.1, G)
# five clear responders of distinct size and alternating sign, then small changes
DELTA = np.array([5.0, -4.0, 3.0, -2.0, 1.0, 0.1, -0.09, 0.08, -0.07, 0.06, -0.05, 0.04])


def cells(mean: np.ndarray, n: int = N, seed: int = 0) -> np.ndarray:
    """``n`` cells (even) with exactly the mean ``mean`` and variance ``SPREAD**2 n/(n-1)``."""
    rng = np.random.default_rng(seed)
    signs = np.stack([rng.permutation(np.repeat([1.0, -1.0], n // 2)) for _ in mean], axis=1)
    return mean + SPREAD * signs


def make(groups: list[tuple], *, sparse: bool = False, seed: int = 0, **obs) -> ad.AnnData:
    """One block of cells per ``(cell_type, drug, dose, mean)`` or ``(..., mean, X)``."""
    blocks = [g[4] if len(g) > 4 else cells(g[3], seed=seed + i) for i, g in enumerate(groups)]
    sizes = [len(b) for b in blocks]
    X = np.vstack(blocks)
    frame = pd.DataFrame({c: np.repeat([g[k] for g in groups], sizes)
                          for k, c in enumerate(["cell_type", "drug", "dose"])}, dtype=object)
    frame["dose"] = frame["dose"].astype(type(groups[0][2]))
    for key, values in obs.items():
        frame[key] = np.repeat(values, sizes)
    frame.index = [f"c{i}" for i in range(len(frame))]
    a = ad.AnnData(sp.csr_matrix(X) if sparse else X, obs=frame)
    a.var_names = [f"g{i}" for i in range(G)]
    return a


def world(sparse: bool = False):
    """Train: type A's controls and drug d1 (+DELTA at 10), d2 (-DELTA/2 at 10); real: d1."""
    ctrl = cells(CTRL_A)
    train = make([("A", "control", 0.0, CTRL_A, ctrl), ("A", "d1", 10.0, CTRL_A + DELTA, ctrl + DELTA),
                  ("A", "d2", 10.0, CTRL_A - DELTA / 2)], sparse=sparse)
    real = make([("A", "d1", 10.0, CTRL_A + DELTA, ctrl + DELTA)], sparse=sparse, holdout=["dose"])
    return train, real, ctrl


def score(train, real, generated, **kw) -> pd.Series:
    table = evaluate_perturbation(real, generated, train=train, n_top=5, n_de=5, baselines=False, **kw)
    return table.iloc[0]


@pytest.mark.parametrize("sparse", [False, True])
def test_perfect_prediction_scores_one_and_a_sign_flip_zero(sparse):
    train, real, ctrl = world(sparse)
    got = score(train, real, real)
    for col in ("r2_delta_top", "pearson_delta_top", "de_overlap", "de_direction", "r2_delta_systema",
                "pearson_delta_systema"):
        assert got[col] == pytest.approx(1.0), col
    assert abs(got["energy"]) < 1e-9  # identical clouds
    flipped = make([("A", "d1", 10.0, CTRL_A - DELTA, ctrl - DELTA)])
    got = score(train, real, flipped)
    assert got["pearson_delta_top"] == pytest.approx(-1.0) and got["de_direction"] == 0.0
    assert got["de_overlap"] == 1.0  # the same genes change most, the wrong way
    top = DELTA[:5]  # SS_res = sum (2 delta)^2 against SS_tot of delta
    assert got["r2_delta_top"] == pytest.approx(1 - 4 * (top**2).sum() / ((top - top.mean()) ** 2).sum())


def test_de_overlap_and_direction_count_the_real_top_genes():
    train, real, ctrl = world()
    partial = np.where(np.arange(G) < 3, DELTA, 0.0)  # genes 0-2 of the top five, nothing else
    got = score(train, real, make([("A", "d1", 10.0, CTRL_A + partial, ctrl + partial)]))
    assert got["de_overlap"] == pytest.approx(3 / 5)  # unchanged genes are never predicted DE
    assert got["de_direction"] == pytest.approx(3 / 5)  # sign(0) matches no real change
    assert got["pearson_delta_top"] == pytest.approx(np.corrcoef(DELTA[:5], partial[:5])[0, 1])


def test_energy_of_identical_clouds_is_zero_and_of_shifted_ones_positive():
    train, real, ctrl = world()
    shifted = make([("A", "d1", 10.0, CTRL_A + DELTA + 1.0, ctrl + DELTA + 1.0)])
    assert score(train, real, shifted)["energy"] > 1.0
    table = evaluate_perturbation(real, None, train=train, baselines=["nearest_dose", "no_change"])
    by = table.set_index("method")["energy"]
    # nearest_dose's cells are the controls moved by d1's measured change: the real cells
    assert abs(by["nearest_dose"]) < 1e-6 and by["no_change"] > 1.0
    # scdiff.metrics.energy_distance of the two clouds (the PCs hold the whole change)
    assert by["no_change"] == pytest.approx(energy_distance(ctrl, ctrl + DELTA), rel=1e-6)
    off = evaluate_perturbation(real, real, train=train, energy=False)
    assert off["energy"].isna().all()


def test_no_change_and_mean_perturbation_golden():
    ctrl_b = CTRL_A + 1.0
    train = make([("A", "control", 0.0, CTRL_A), ("A", "d1", 10.0, CTRL_A + DELTA),
                  ("A", "d2", 10.0, CTRL_A - DELTA / 4, cells(CTRL_A - DELTA / 4, n=2 * N)),
                  ("B", "control", 0.0, ctrl_b)])
    groups = pd.DataFrame({"cell_type": ["A", "B"], "drug": ["d3", "d3"], "dose": [10.0, 10.0]})
    np.testing.assert_allclose(no_change(train, groups, design=Design()), [CTRL_A, ctrl_b], atol=1e-12)
    # each treated group once (d2 has twice the cells); B has none, so A's changes
    mean = (DELTA - DELTA / 4) / 2
    np.testing.assert_allclose(mean_perturbation(train, groups, design=Design()),
                               [CTRL_A + mean, ctrl_b + mean], atol=1e-12)
    # Systema's reference is the mean of the treated cells: d2 counts twice
    real = make([("A", "d3", 10.0, CTRL_A + DELTA / 4)])
    table = evaluate_perturbation(real, None, train=train, n_top=G, baselines=["mean_perturbation"])
    ref = CTRL_A + (DELTA * N - DELTA / 4 * 2 * N) / (3 * N)
    mu, hat = CTRL_A + DELTA / 4, CTRL_A + mean
    assert table["r2_delta_systema"].iloc[0] == pytest.approx(r2_score(mu - ref, hat - ref))
    assert table["r2_delta_top"].iloc[0] == pytest.approx(r2_score(mu - CTRL_A, hat - CTRL_A))


def test_additive_on_a_pair_is_control_plus_the_member_effects():
    e1_a, e1_b, e2_b = DELTA, -DELTA / 3, np.roll(DELTA, 3)
    train = make([("A", "control", 0.0, CTRL_A), ("B", "control", 0.0, CTRL_A + 1),
                  ("A", "d1", 10.0, CTRL_A + e1_a), ("A", "d1", 100.0, CTRL_A + 2 * e1_a),
                  ("B", "d1", 10.0, CTRL_A + 1 + e1_b), ("B", "d2", 100.0, CTRL_A + 1 + e2_b),
                  ("A", "d1+d2", 10.0, CTRL_A + 9.0)])  # a measured pair is no member's effect
    groups = pd.DataFrame({"cell_type": ["A", "A", "A", "A"], "drug": ["d2+d1", "d1+d3", "d1", "d9"],
                           "dose": ["80+12", "10+10", "10", "5"]})
    got = additive(train, groups, design=Design())
    # d1 on A itself at 10 (its nearest measured dose to 12); d2 only on B, at 100
    np.testing.assert_allclose(got[0], CTRL_A + e1_a + e2_b, atol=1e-12)
    np.testing.assert_allclose(got[1], CTRL_A + e1_a, atol=1e-12)  # d3 never measured alone: 0
    # a single drug keeps the averaged effect over the cell types measured at that dose
    np.testing.assert_allclose(got[2], CTRL_A + (e1_a + e1_b) / 2, atol=1e-12)
    np.testing.assert_allclose(got[3], CTRL_A, atol=1e-12)  # an unseen drug: the control
    # nearest_dose: the pair as measured; an unmeasured pair falls back to the control
    near = nearest_dose(train, groups.iloc[:2].assign(dose=["10", "10"]), design=Design())
    np.testing.assert_allclose(near, [CTRL_A + 9.0, CTRL_A], atol=1e-12)


def _linear_world(seed: int = 0):
    """Changes exactly linear in the standardised features: b_c + (A g(d) + B) f."""
    rng = np.random.default_rng(seed)
    drugs = [f"d{i}" for i in range(10)]
    table = pd.DataFrame(rng.normal(size=(10, 3)), index=drugs, columns=["x", "y", "z"])
    std = ((table - table.mean()) / table.std(ddof=0)).to_numpy()
    f = dict(zip(drugs, std, strict=True))
    A, B = rng.normal(size=(3, G)), rng.normal(size=(3, G))
    bias = {"A": rng.normal(size=G), "B": rng.normal(size=G)}
    base = {"A": CTRL_A, "B": CTRL_A + 1}

    def truth(ct, parts):
        return bias[ct] + sum(f[m] @ (A * np.log1p(d) / np.log1p(1000.0) + B) for m, d in parts)

    groups = [(ct, "control", 0.0, base[ct]) for ct in base]
    groups += [(ct, m, d, base[ct] + truth(ct, [(m, d)]))
               for ct in base for m in drugs[:9] for d in (10.0, 100.0, 1000.0)]
    return make(groups), table, truth, base


def test_linear_with_features_recovers_a_linear_world():
    train, table, truth, base = _linear_world()
    groups = pd.DataFrame({"cell_type": ["A", "B", "A"], "drug": ["d9", "d9", "d9+d2"],
                           "dose": ["100", "30", "100+10"]})
    got = linear(train, groups, design=Design(), features={"drug": table})
    asked = [("A", [("d9", 100.0)]), ("B", [("d9", 30.0)]), ("A", [("d2", 10.0), ("d9", 100.0)])]
    for row, (ct, parts) in zip(got, asked, strict=True):
        assert r2_score(truth(ct, parts), row - base[ct]) > 0.99
    # without features an unseen drug gets no drug-specific change, only what is shared
    plain = linear(train, groups.iloc[:1], design=Design())
    assert r2_score(truth("A", asked[0][1]), plain[0] - base["A"]) < 0.9


def test_set_keys_are_order_free():
    d = Design()
    assert d.parts("b+a", "1+2") == d.parts("a+b", "2+1") == (("a", 2.0), ("b", 1.0))
    train = make([("A", "control", "0", CTRL_A), ("A", "b+a", "1+2", CTRL_A + DELTA),
                  ("A", "a+b", "2+1", CTRL_A + DELTA), ("A", "a", "2", CTRL_A + DELTA / 2)])
    _, keys = group_codes(train, d)
    assert keys == [("A", "control", "0"), ("A", "a+b", "2+1"), ("A", "a", "2")]
    numeric = make([("A", "b+a", 5.0, CTRL_A), ("A", "a+b", 5.0, CTRL_A)])
    assert group_codes(numeric, d)[1] == [("A", "a+b", 5.0)]
    # generated cells spelled the other way round score the real ones as the same condition
    real = make([("A", "a+b", "2+1", CTRL_A + DELTA)])
    fake = make([("A", "b+a", "1+2", CTRL_A + DELTA)])
    got = evaluate_perturbation(real, fake, train=train, n_top=5, baselines=False)
    assert got["r2_delta_top"].iloc[0] == pytest.approx(1.0)


def test_string_doses_score_as_numeric_ones():
    train, real, _ = world()
    as_text = [a.copy() for a in (train, real)]
    for a in as_text:
        a.obs["dose"] = a.obs["dose"].map(lambda v: f"{v:g}").astype("category")
    assert group_codes(as_text[0], Design())[1][1] == ("A", "d1", 10.0)  # no set: floats
    cols = ["r2_all", "r2_delta_top", "pearson_delta_top", "de_overlap", "energy"]
    want = evaluate_perturbation(real, real, train=train)[cols]
    got = evaluate_perturbation(as_text[1], as_text[1], train=as_text[0])[cols]
    pd.testing.assert_frame_equal(got, want)


def test_group_column_rides_along_and_summarize_groups_by_it():
    train, real, _ = world()
    table = evaluate_perturbation(real, real, train=train, group="holdout", energy=False)
    assert (table["holdout"] == "dose").all()
    summary = summarize(table, by=["holdout", "method"])
    assert list(summary.index.get_level_values("method")) == [
        "scdiff", "no_change", "mean_perturbation", "additive", "linear", "nearest_dose"]
    assert "de_overlap" in summary.columns and "energy" in summary.columns


def test_errors_name_the_parameter():
    train, table, _, _ = _linear_world()
    ask = pd.DataFrame({"cell_type": ["A"], "drug": ["d9+dX"], "dose": ["10+10"]})
    with pytest.raises(InputError, match=r"drug 'dX' has no row in features\['drug'\]"):
        linear(train, ask, design=Design(), features={"drug": table})
    for wrong in ({"compound": table}, table):
        with pytest.raises(InputError, match="features has no table for 'drug'"):
            linear(train, ask, design=Design(), features=wrong)
    with pytest.raises(InputError, match=r"features\['drug'\] has a non-numeric column 'name'"):
        linear(train, ask, design=Design(), features={"drug": table.assign(name="x")})
    bad = ask.assign(dose=["10+20+30"])
    with pytest.raises(InputError, match="3 doses for a set of 2 perturbations"):
        additive(train, bad, design=Design())
    cells_bad = make([("A", "control", "0", CTRL_A), ("A", "d1+d2", "10+20+30", CTRL_A)])
    with pytest.raises(InputError, match="3 doses for a set of 2 perturbations"):
        group_codes(cells_bad, Design())
    tr, real, _ = world()
    with pytest.raises(InputError, match="group='batch' is not an obs column of real"):
        evaluate_perturbation(real, None, train=tr, group="batch")
    with pytest.raises(InputError, match="baselines names 'oracle'"):
        evaluate_perturbation(real, None, train=tr, baselines=["oracle"])
