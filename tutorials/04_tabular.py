# %% [markdown]
# # Tabular data: a table from scikit-learn
#
# scdiff reads `.csv` and `.parquet` tables (numeric columns are features, the columns named
# with `--condition` are conditions) and writes `.csv`. Here: the wine recognition data
# (178 wines x 13 chemical measurements, 3 cultivars), through the command line.
# Run from the repository root: `python tutorials/04_tabular.py`.

# %%
# --8<-- [start:table]
import subprocess
import sys

import numpy as np
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
steps = 200 if QUICK else 3000
# --8<-- [end:settings]

# %%
# --8<-- [start:refused]
import anndata as ad  # noqa: E402

as_is = ad.AnnData(real_train.drop(columns="cultivar").to_numpy(np.float32),
                   obs=real_train[["cultivar"]].rename(index=str))
try:
    scdiff.ConditionalDiffusion(as_is, condition="cultivar")
except scdiff.InputError as err:
    print("refused:", err)
# --8<-- [end:refused]

# %%
# --8<-- [start:write]
features = [c for c in table.columns if c != "cultivar"]
logged_train = real_train.copy()
logged_train[features] = np.log1p(logged_train[features])   # every value >= 0, max log1p(1680) = 7.4
logged_train.to_parquet(out / "wine_train.parquet")          # parquet needs pyarrow
real_test[["cultivar"]].to_csv(out / "wine_test_labels.csv", index=False)
# --8<-- [end:write]

# %%
# --8<-- [start:cli]
def scdiff_cli(*args: str) -> None:
    """The same as typing `scdiff ARGS` in a shell."""
    subprocess.run([sys.executable, "-m", "scdiff", *args], check=True)


scdiff_cli("train", str(out / "wine_train.parquet"), "--condition", "cultivar",
           "--out", str(out / "run"), "--steps", str(steps), "--overwrite", "--quiet")
scdiff_cli("sample", str(out / "run"), "--like", str(out / "wine_test_labels.csv"),
           "--out", str(out / "generated.csv"), "--overwrite", "--quiet")
generated = pd.read_csv(out / "generated.csv", index_col="cell")
generated[features] = np.expm1(generated[features])         # back to the table's own units
print(generated.head())
# --8<-- [end:cli]

# %%
# --8<-- [start:tstr]
def score(fit_on: pd.DataFrame) -> float:
    """Train a random forest on `fit_on`; balanced accuracy on the real held-out wines."""
    clf = RandomForestClassifier(n_estimators=200, random_state=0)
    clf.fit(fit_on[features], fit_on["cultivar"])
    return balanced_accuracy_score(real_test["cultivar"], clf.predict(real_test[features]))


scores = {"train on real": score(real_train), "train on generated": score(generated)}
print({k: round(v, 3) for k, v in scores.items()})
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
save_results(out, {"steps": steps, **{f"balanced_accuracy[{k}]": round(float(v), 3)
                                      for k, v in scores.items()}})
