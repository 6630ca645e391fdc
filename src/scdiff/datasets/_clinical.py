"""Simulate a clinical table: the mixed columns real tables have, in one small DataFrame.

Patients of three disease subtypes (the condition), with text and ordered categories, a
site column stored as a pandas categorical, integers, skewed and heavy-tailed labs,
negative values, booleans, and values missing more at some sites than others. The columns
depend on each other (blood pressure on age and BMI, CRP and visits on the subtype, adverse
events on smoking and age), so pair trends and ML efficacy have something to measure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scdiff._errors import InputError

SUBTYPES = ("A", "B", "C")
SITES = tuple(f"site_{i}" for i in range(1, 7))


def simulate_clinical(*, n_rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A simulated clinical table of ``n_rows`` patients (columns in the module docstring).

    Examples
    --------
    >>> table = simulate_clinical(n_rows=500, seed=1)
    >>> table.shape, table["subtype"].value_counts().index[0]
    ((500, 12), 'A')
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 10:
        raise InputError(f"n_rows={n_rows!r} needs to be a whole number >= 10.")
    rng = np.random.default_rng(seed)
    n = int(n_rows)
    subtype = rng.choice(SUBTYPES, size=n, p=[0.5, 0.3, 0.2])
    is_b, is_c = subtype == "B", subtype == "C"
    sex = rng.choice(["F", "M"], size=n)
    age = np.clip(np.round(rng.normal(56 + 7 * is_c, 12, n)), 18, 90).astype(np.int64)
    old = (age - 56) / 12
    smoke_logits = np.stack([np.zeros(n), -0.4 + 0.5 * old, -0.8 - 0.3 * old + 0.5 * is_b], 1)
    p_smoke = np.exp(smoke_logits) / np.exp(smoke_logits).sum(1, keepdims=True)
    smoker = np.array(["never", "former", "current"])[
        (rng.random(n)[:, None] > np.cumsum(p_smoke, 1)).sum(1)]
    site = rng.choice(SITES, size=n, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    bmi = np.exp(rng.normal(np.log(27) + 0.03 * (sex == "M") + 0.04 * is_b, 0.17, n)).round(1)
    bp = np.round(112 + 6 * old + 0.9 * (bmi - 27) + 9 * is_b + rng.normal(0, 11, n)).astype(np.int64)
    ldl = np.exp(rng.normal(np.log(3.1) + 0.12 * (smoker == "current") + 0.05 * old, 0.25, n)).round(2)
    crp = np.exp(rng.normal(0.3 + 1.1 * is_c + 0.4 * is_b + 0.1 * (bmi - 27) / 4, 0.9, n)).round(2)
    egfr_change = np.round(rng.normal(-1.5 - 2.0 * old - 4.5 * is_c + 1.0 * is_b, 5.0, n), 1)
    visits = rng.poisson(np.exp(0.6 + 0.7 * is_c + 0.15 * old + 0.1 * np.log(crp + 1))).astype(np.int64)
    risk = -2.2 + 0.9 * (smoker == "current") + 0.5 * old + 0.6 * is_c + 0.3 * np.log1p(crp)
    adverse = rng.random(n) < 1 / (1 + np.exp(-risk))
    table = pd.DataFrame({
        "subtype": subtype, "sex": sex, "age": age,
        "smoker": pd.Categorical(smoker, categories=["never", "former", "current"], ordered=True),
        "site": pd.Categorical(site, categories=list(SITES)), "bmi": bmi, "systolic_bp": bp,
        "ldl": ldl, "crp": crp, "egfr_change": egfr_change, "n_visits": visits,
        "adverse_event": adverse,
    })
    # missing more often at two sites, and more often for older patients' labs
    p_missing = np.where(np.isin(site, ["site_5", "site_6"]), 0.2, 0.04)
    table.loc[rng.random(n) < p_missing, "bmi"] = np.nan
    table.loc[rng.random(n) < 0.5 * p_missing * (1 + (old > 1)), "ldl"] = np.nan
    return table
