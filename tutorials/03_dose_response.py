# %% [markdown]
# # Dose-response on the simulator
#
# Train on simulated cells (3 cell types x 2 drugs x 5 doses, with every cell at dose 50
# and every type_2 x drugB cell held out), draw the model's dose-response curves and put
# them beside the simulator's ground truth.
# Run from the repository root: `python tutorials/03_dose_response.py`.

# %%
# --8<-- [start:load]
import anndata as ad
import numpy as np
import pandas as pd

import scdiff
from scdiff.datasets import true_mean

train = ad.read_h5ad("data_examples/simulated_train.h5ad")   # 1840 cells x 500 genes
print(train.obs.groupby(["drug", "dose"], observed=True).size().unstack(fill_value=0))
# --8<-- [end:load]

# %%
# --8<-- [start:settings]
from _settings import QUICK, output_dir, save_results  # noqa: E402  (tutorials/_settings.py)

out = output_dir("dose_response")
steps = 300 if QUICK else 4000
width = 64 if QUICK else 256
n_cells = 50 if QUICK else 300
# --8<-- [end:settings]

# %%
# --8<-- [start:train]
model = scdiff.ConditionalDiffusion(train, condition=["cell_type", "drug"], dose="dose", width=width)
model.train(steps=steps, seed=0)
print(model)
# --8<-- [end:train]

# %%
# --8<-- [start:curves]
import matplotlib.pyplot as plt  # noqa: E402

cases = [("type_0", "drugA", "dose 50 never seen"), ("type_2", "drugB", "combination never seen")]
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
agreement = {}
for ax, (cell_type, drug, note) in zip(axes, cases, strict=True):
    genes = list(train.var_names[train.var["response_drug"] == drug][:6])
    curves = scdiff.perturb.dose_response(model, condition={"cell_type": cell_type, "drug": drug},
                                          genes=genes, n_cells=n_cells, seed=0)
    truth = pd.DataFrame([true_mean(train, cell_type=cell_type, drug=drug, dose=d, n_samples=2000)
                          for d in curves.index], index=curves.index, columns=train.var_names)[genes]
    scdiff.pl.dose_response(curves, ax=ax, show=False)
    for color, gene in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], genes, strict=False):
        ax.plot(truth.index, truth[gene], ls="--", lw=1, color=color)
    ax.set_title(f"{cell_type} + {drug} ({note}); dashed: truth", fontsize=9)
    # agreement of the change from dose 0, generated vs true, over genes and doses
    agreement[f"{cell_type}+{drug}"] = float(np.corrcoef(
        (curves - curves.iloc[0]).to_numpy().ravel(), (truth - truth.iloc[0]).to_numpy().ravel())[0, 1])
fig.savefig(out / "dose_response.png", dpi=110, bbox_inches="tight")
print({k: round(v, 3) for k, v in agreement.items()})
# --8<-- [end:curves]

# %%
save_results(out, {"steps": steps, **{f"response_pearson[{k}]": round(v, 3) for k, v in agreement.items()}})
