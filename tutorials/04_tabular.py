# %% [markdown]
# # Tabular data: a table as it is
#
# scdiff reads `.csv` and `.parquet` tables of any columns (numbers of any sign and scale,
# integers, categories, booleans, missing values) and writes the same columns back, with
# their dtypes and categories. Here: the wine recognition data (178 wines x 13 chemical
# measurements, 3 cultivars) through the command line, then a clinical table of mixed
# columns through Python. Run from the repository root: `python tutorials/04_tabular.py`.

# %%
# --8<-- [start:table]
import subprocess
import sys

import pandas as pd
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

import scdiff

wine = load_wine(as_frame=True)
table = wine.data.copy()
table["cultivar"] = [f"cultivar_{i}" for i in wine.target]
real_train, real_test = train_test_split(table, test_size=0.3, stratify=table["cultivar"],
                                         random_state=0)
print(table.describe().T[["min", "max"]])
# --8<-- [end:table]

# %%
# --8<-- [start:settings]
from _settings import QUICK, output_dir, save_results  # noqa: E402  (tutorials/_settings.py)

out = output_dir("tabular")
steps = ["--steps", "40"] if QUICK else []   # the default length otherwise
# --8<-- [end:settings]

# %%
# --8<-- [start:write]
features = [c for c in table.columns if c != "cultivar"]
real_train.to_csv(out / "wine_train.csv", index=False)        # the raw table, as it is
real_test.to_parquet(out / "wine_test.parquet")               # parquet needs pyarrow
# --8<-- [end:write]

# %%
# --8<-- [start:cli]
def scdiff_cli(*args: str) -> None:
    """The same as typing `scdiff ARGS` in a shell."""
    subprocess.run([sys.executable, "-m", "scdiff", *args], check=True)


scdiff_cli("train", str(out / "wine_train.csv"), "--condition", "cultivar",
           "--out", str(out / "run"), *steps, "--overwrite", "--quiet")
scdiff_cli("sample", str(out / "run"), "--like", str(out / "wine_test.parquet"),
           "--out", str(out / "generated.csv"), "--overwrite", "--quiet")
generated = pd.read_csv(out / "generated.csv")
print(generated.head())
# --8<-- [end:cli]

# %%
# --8<-- [start:evaluate]
scdiff_cli("evaluate", str(out / "wine_test.parquet"), str(out / "generated.csv"),
           "--train", str(out / "wine_train.csv"), "--condition", "cultivar",
           "--out", str(out / "report"), "--overwrite")
scores = pd.read_csv(out / "report" / "metrics.csv", index_col="metric")
# --8<-- [end:evaluate]

# %%
# --8<-- [start:tstr]
def score(fit_on: pd.DataFrame) -> float:
    """Train a random forest on `fit_on`; balanced accuracy on the real held-out wines."""
    clf = RandomForestClassifier(n_estimators=200, random_state=0)
    clf.fit(fit_on[features], fit_on["cultivar"])
    return balanced_accuracy_score(real_test["cultivar"], clf.predict(real_test[features]))


efficacy = {"train on real": score(real_train), "train on generated": score(generated)}
print({k: round(v, 3) for k, v in efficacy.items()})
# --8<-- [end:tstr]

# %%
# --8<-- [start:plot]
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True, layout="constrained")
x, y = "flavanoids", "proline"
for ax, (name, frame) in zip(axes, [("real (held out)", real_test), ("generated", generated)], strict=True):
    for cultivar, color in zip(sorted(table["cultivar"].unique()), ["#4c72b0", "#dd8452", "#55a868"],
                               strict=True):
        part = frame[frame["cultivar"] == cultivar]
        ax.scatter(part[x], part[y], s=14, color=color, label=cultivar, alpha=0.8)
    ax.set(xlabel=x, ylabel=y, title=name)
axes[0].legend(frameon=False, fontsize=8)
fig.savefig(out / "wine.png", dpi=110, bbox_inches="tight")
# --8<-- [end:plot]

# %%
# --8<-- [start:clinical]
from scdiff.datasets import simulate_clinical  # noqa: E402

clinical = simulate_clinical(n_rows=2000 if not QUICK else 300, seed=0)
print(clinical.dtypes)
model = scdiff.ConditionalDiffusion(clinical, condition="subtype")
model.train(steps=40 if QUICK else None, progress=False)
patients = model.sample(500, condition={"subtype": "C"}, seed=0)
assert list(patients.columns) == list(clinical.columns) and patients.dtypes.equals(clinical.dtypes)
print(patients.head())
print("missing BMI: real", round(clinical["bmi"].isna().mean(), 3),
      "generated", round(patients["bmi"].isna().mean(), 3))
# --8<-- [end:clinical]

# %%
save_results(out, {"quick": QUICK,
                   **{f"balanced_accuracy[{k}]": round(float(v), 3) for k, v in efficacy.items()},
                   **{f"{m}[{col}]": round(float(scores.loc[m, col]), 3)
                      for m in scores.index for col in ("generated", "floor")}})
