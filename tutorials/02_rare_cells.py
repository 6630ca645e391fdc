# %% [markdown]
# # Rare-cell augmentation
#
# Add generated cells of the rare cell types to a training set and measure what it does
# to a classifier's balanced accuracy on real held-out cells.
# Run from the repository root: `python tutorials/02_rare_cells.py`.

# %%
# --8<-- [start:setup]
import anndata as ad
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, recall_score

import scdiff

train = ad.read_h5ad("data_examples/pbmc_train.h5ad")
test = ad.read_h5ad("data_examples/pbmc_test.h5ad")
counts = train.obs["cell_type"].value_counts()
rare = list(counts.index[counts < 25])        # the types with fewer than 25 training cells
print(counts[rare])
# --8<-- [end:setup]

# %%
# --8<-- [start:settings]
from _settings import QUICK, output_dir, save_results  # noqa: E402  (tutorials/_settings.py)

out = output_dir("rare_cells")
steps = 150 if QUICK else 2000
width = 64 if QUICK else 256
seeds = [0] if QUICK else [0, 1, 2]
# --8<-- [end:settings]

# %%
# --8<-- [start:classifier]
def dense(a):
    return a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)


pca = PCA(n_components=30, random_state=0).fit(dense(train))   # fitted on real cells only


def balanced_accuracy(cells: ad.AnnData) -> tuple[float, pd.Series]:
    """Train logistic regression on PCs of `cells`; score it on the real test cells."""
    clf = LogisticRegression(max_iter=2000).fit(pca.transform(dense(cells)), cells.obs["cell_type"])
    pred = clf.predict(pca.transform(dense(test)))
    truth = test.obs["cell_type"].astype(str)
    recall = pd.Series(recall_score(truth, pred, labels=rare, average=None, zero_division=0), index=rare)
    return balanced_accuracy_score(truth, pred), recall
# --8<-- [end:classifier]

# %%
# --8<-- [start:train]
model = scdiff.ConditionalDiffusion(train, condition="cell_type", width=width)
model.train(steps=steps, seed=0)
target = 60                                    # bring every rare type up to 60 cells
extra = {t: target - int(counts[t]) for t in rare}
# --8<-- [end:train]

# %%
# --8<-- [start:compare]
def augmented(seed: int, source: str, guidance: float = 1.0) -> ad.AnnData:
    parts = [train]
    for t, n in extra.items():
        if source == "scdiff":
            parts.append(model.sample(n_cells=n, condition={"cell_type": t}, guidance=guidance, seed=seed))
        else:                                  # naive oversampling: copies of real rare cells
            idx = np.random.default_rng(seed).choice(np.flatnonzero(train.obs["cell_type"] == t), n)
            obs = train.obs.iloc[idx].set_axis([f"copy-{i}" for i in range(n)])
            parts.append(ad.AnnData(train.X[idx], obs=obs, var=train.var))
    return ad.concat(parts, keys=[str(i) for i in range(len(parts))], index_unique="-")


rows = []
base, base_recall = balanced_accuracy(train)
rows.append({"training set": "real", "seed": 0, "balanced accuracy": base, **base_recall})
for seed in seeds:
    for name, source, guidance in [("real + oversampled", "copies", 1.0),
                                   ("real + scdiff", "scdiff", 1.0),
                                   ("real + scdiff (guidance 2)", "scdiff", 2.0)]:
        acc, recall = balanced_accuracy(augmented(seed, source, guidance))
        rows.append({"training set": name, "seed": seed, "balanced accuracy": acc, **recall})
results = pd.DataFrame(rows)
summary = results.groupby("training set", sort=False).mean(numeric_only=True).drop(columns="seed")
print(summary.round(3).T.to_string())
# --8<-- [end:compare]

# %%
# --8<-- [start:plot]
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
colors = ["#999999", "#4c72b0", "#dd8452", "#c44e52"]
summary["balanced accuracy"].plot.barh(ax=axes[0], color=colors)
axes[0].set_xlabel("balanced accuracy on real held-out cells")
axes[0].invert_yaxis()
summary[rare].T.plot.bar(ax=axes[1], color=colors, rot=0, legend=False)
axes[1].set_xticklabels([t.replace("/", "/\n") for t in rare], fontsize=8)
axes[1].set_ylabel("recall on held-out cells")
n_test = ", ".join(str((test.obs["cell_type"] == t).sum()) for t in rare)
axes[1].set_title(f"rare types (held-out cells: {n_test})", fontsize=9)
fig.savefig(out / "augmentation.png", dpi=110, bbox_inches="tight")
# --8<-- [end:plot]

# %%
save_results(out, {
    "rare_types": rare,
    "per_seed": results.groupby("training set", sort=False)["balanced accuracy"].apply(
        lambda v: [round(float(x), 4) for x in v]).to_dict(),
    **{f"balanced_accuracy[{k}]": round(float(v), 4) for k, v in summary["balanced accuracy"].items()},
})
