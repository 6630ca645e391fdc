# %% [markdown]
# # PBMC: train, sample, evaluate, look at the UMAP
#
# Run from the repository root: `python tutorials/01_pbmc.py`.
# Figures go to `runs/tutorials/pbmc/` (set `SCDIFF_TUTORIAL_OUT` to change it).

# %%
# --8<-- [start:load]
import anndata as ad

import scdiff

train = ad.read_h5ad("data_examples/pbmc_train.h5ad")  # 490 cells x 765 genes, log1p CP10k
test = ad.read_h5ad("data_examples/pbmc_test.h5ad")    # 210 held-out cells
print(train)
print(train.obs["cell_type"].value_counts())
# --8<-- [end:load]

# %%
# --8<-- [start:settings]
from _settings import QUICK, output_dir, save_results  # noqa: E402  (tutorials/_settings.py)

out = output_dir("pbmc")
steps = 150 if QUICK else 2000
width = 64 if QUICK else 256
# --8<-- [end:settings]

# %%
# --8<-- [start:train]
model = scdiff.ConditionalDiffusion(train, condition="cell_type", width=width)
model.train(steps=steps, seed=0)   # leave steps out and the length follows the data size
print(model)
model.save(out / "run", overwrite=True)          # weights, config.json, train_log.csv, loss.png
scdiff.pl.loss(out / "run", save=out / "loss.png")
# --8<-- [end:train]

# %%
# --8<-- [start:sample]
fake = model.sample(like=test, seed=0)   # as many cells of each type as the test set holds
print(fake)
assert list(fake.var_names) == list(test.var_names)
# --8<-- [end:sample]

# %%
# --8<-- [start:evaluate]
table = scdiff.evaluate(test, fake, condition="cell_type", train=train)
overall = table[table["group"] == "overall"].set_index("metric")
print(overall[["value", "floor", "ratio"]].round(3))
scdiff.pl.metric_bars(table, save=out / "metrics.png")
# --8<-- [end:evaluate]

# %%
# --8<-- [start:plots]
scdiff.pl.compare(test, fake, color="cell_type", save=out / "umap.png")
scdiff.pl.mean_scatter(test, fake, condition="cell_type", ncols=5, max_groups=10,
                       save=out / "mean_scatter.png")
scdiff.pl.marker_dotplot(test, fake, condition="cell_type", n_genes=2, save=out / "markers.png")
# --8<-- [end:plots]

# %%
save_results(out, {
    "steps": steps,
    "final_loss": round(float(model.log[-1]["loss"]), 4),
    **{f"{m}": round(float(overall.loc[m, "value"]), 3)
       for m in ("mean_pearson", "knn_auc", "label_accuracy", "mmd")},
    **{f"{m}_floor": round(float(overall.loc[m, "floor"]), 3)
       for m in ("mean_pearson", "knn_auc", "label_accuracy", "mmd")},
})
