"""Setting a model up: from an AnnData (a new model) or from a run's config (a loaded one).

Both paths end in the same :class:`ModelParts`, the part of a model that is not weights:
preprocessing, condition encoding, library sizes, noise schedule and the network's
configuration. :func:`setup` also returns the training cells in the network's space.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import torch

from scdiff._errors import InputError, arg
from scdiff.data import ConditionEncoder, Preprocessor, TableCodec, cell_sketch, check_anndata, expression
from scdiff.data._backed import BackedFiles
from scdiff.data._cells import expressed_genes
from scdiff.data._counts import CountCells, counts_of
from scdiff.data._io import frame_to_anndata
from scdiff.data._library import fit_library_sizes
from scdiff.data._preprocess import read_expression
from scdiff.data._table import check_kind, frame_of, table_kind
from scdiff.diffusion import NoiseSchedule
from scdiff.model._conditions import network_conditions
from scdiff.model._space import Cells, choose_space, fit_pca, new_space
from scdiff.nn import ConditionalMLP
from scdiff.space import GeneSpace, Space, space_from_config
from scdiff.train import CellTensors


@dataclass
class ModelParts:
    """Everything a model is made of except its weights (what ``config.json`` records).

    Attributes
    ----------
    preprocessor
        Input scale, modelled genes and their scaling.
    encoder
        Condition keys, categories, doses.
    schedule
        The noise schedule and what the network predicts.
    network_config
        The keyword arguments of :class:`~scdiff.nn.ConditionalMLP`.
    library
        Quantiles of the training cells' library sizes, per condition (empty when unknown).
    training_cells
        A sketch of the training cells' names (:func:`scdiff.data.cell_sketch`), so that
        an evaluation against them can be recognised (empty for older runs).
    space
        The space the diffusion runs in (:mod:`scdiff.space`): the modelled genes (runs
        from before spaces), their principal components, or a count autoencoder's latent.
    table
        A plain table's column encoding (:class:`~scdiff.data.TableCodec`); ``None`` for
        expression.
    """

    preprocessor: Preprocessor
    encoder: ConditionEncoder
    schedule: NoiseSchedule
    network_config: dict
    library: dict[str, list[float]] = field(default_factory=dict)
    training_cells: dict = field(default_factory=dict)
    space: Space | None = None
    table: TableCodec | None = None

    def __post_init__(self) -> None:
        if self.space is None:
            self.space = GeneSpace(len(self.preprocessor.genes))

    @property
    def genes(self) -> list[str]:
        """The genes generated cells hold: every gene of the data in a count space, else
        the modelled genes (a table's generated columns)."""
        if self.table is not None:
            return [c["name"] for c in self.table.columns]
        return list(self.space.genes) if self.space.kind == "latent" else list(self.preprocessor.genes)

    @property
    def kind(self) -> str:
        """``"tabular"`` (a plain table: samples are DataFrames) or ``"expression"``."""
        return "expression" if self.table is None else "tabular"

    def build_network(self) -> ConditionalMLP:
        """A freshly initialised network of this configuration (draws from torch's RNG)."""
        return build_network(self.network_config, self.schedule)

    def dose_pairs(self) -> dict[str, str]:
        """Dose -> the categorical attribute (drug) it is the dose of."""
        pairs = self.network_config.get("dose_pairs") or []
        keys = self.encoder.keys
        return {d: keys[p] for d, p in zip(self.encoder.dose_keys, pairs, strict=False) if p >= 0}

    def to_config(self) -> dict:
        return {
            "network": self.network_config,
            "schedule": self.schedule.to_config(),
            "preprocess": self.preprocessor.to_config(),
            "conditions": self.encoder.to_config(),
            "library_sizes": self.library,
            "training_cells": self.training_cells,
            "space": self.space.to_config(),
            **({"table": self.table.to_config()} if self.table is not None else {}),
        }

    @classmethod
    def from_config(cls, config: dict) -> ModelParts:
        """The parts a run's config records (KeyError or TypeError when it lacks them)."""
        pre = Preprocessor.from_config(config["preprocess"])
        return cls(
            preprocessor=pre,
            encoder=ConditionEncoder.from_config(config["conditions"]),
            schedule=NoiseSchedule.from_config(config["schedule"]),
            network_config=dict(config["network"]),
            library=config.get("library_sizes") or {},
            training_cells=config.get("training_cells") or {},
            space=space_from_config(config.get("space"), len(pre.genes)),
            table=TableCodec.from_config(config["table"]) if config.get("table") else None,
        )

    def fingerprint(self) -> str:
        """Hash of what the weights' meaning depends on: genes, scaling, conditions, network,
        space (runs in gene space hash as they did before spaces)."""
        parts = [self.network_config, self.preprocessor.to_config(), self.encoder.keys,
                 self.encoder.categories, self.encoder.dose_keys, self.schedule.to_config()]
        if self.space.kind != "gene":
            parts.append(self.space.to_config())
        if self.table is not None:
            parts.append(self.table.to_config())
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def build_network(config: dict, schedule: NoiseSchedule) -> ConditionalMLP:
    """A freshly initialised network of ``config``, with the schedule's mean shift where the
    network has a mean model."""
    return ConditionalMLP(**config, shift=schedule.mean_shift() if config.get("mean") is not None else None)


def setup(
    adata: ad.AnnData,
    condition: str | Sequence[str] | None,
    dose: str | Sequence[str] | None,
    *,
    layer: str | None,
    n_genes: int,
    network: Mapping,
    schedule: Mapping,
    dose_encoder: str,
    dose_by: str | Mapping[str, str] | None,
    additive: bool | str,
    clip_negative: bool = False,
    space: str = "gene",
    latent_dim: int | None = None,
    autoencoder: Mapping | None = None,
    kind: str = "auto",
    condition_features: Mapping | None = None,
    smiles: Mapping | None = None,
):
    """(:class:`ModelParts`, :class:`~scdiff.model._space.Cells`) of a new model of ``adata``.

    ``network`` holds width, depth and dropout; ``schedule`` the schedule's name,
    prediction and number of timesteps; ``space`` where the diffusion runs
    (:func:`~scdiff.model._space.choose_space`), a PCA fitted here, an autoencoder when
    training starts. A backed AnnData gives training cells that are read from disk in row
    blocks (:class:`~scdiff.data.BackedCells`). A DataFrame (or ``kind="tabular"``) is a
    plain table (:func:`as_table`).
    """
    adata, table = as_table(adata, condition, dose, kind)
    if not isinstance(adata, ad.AnnData | BackedFiles):
        raise InputError(f"adata needs to be an AnnData, a pandas DataFrame (a table) or files from "
                         f"scdiff.data.read_backed, got {type(adata).__name__}.")
    check_anndata(adata)
    if n_genes < 1:
        raise InputError(f"{arg('n_genes', n_genes)} needs to be at least 1.")
    if adata.isbacked:  # opened with backed="r": expression is read in row chunks
        from scdiff.data._backed import fit_backed

        preprocessor, row_sums = fit_backed(adata, layer=layer, n_genes=n_genes,
                                            clip_negative=clip_negative)
    else:
        preprocessor, z = Preprocessor.fit_transform(adata, layer=layer, n_genes=n_genes,
                                                     clip_negative=clip_negative)
    encoder = ConditionEncoder.fit(adata.obs, condition, dose)
    library = fit_library_sizes(row_sums if adata.isbacked else expression(adata, layer), adata.obs,
                                input_scale=preprocessor.input_scale, keys=encoder.keys)
    if table is not None and space not in ("auto", "gene"):
        raise InputError(f"{arg('space', space)} is for expression; a table is modelled in its own "
                         f"encoded columns: leave {arg('space')} at 'auto'.")
    kind = choose_space(space, has_library=bool(library),
                        n_attributes=len(encoder.keys) + len(encoder.dose_keys))
    space_obj = new_space(kind, preprocessor, adata.var_names, latent_dim=latent_dim,
                          autoencoder=autoencoder, n_cells=adata.n_obs)
    network_config = network_conditions(adata.obs, encoder, space_obj.dim, network, dose_encoder,
                                        dose_by, additive, condition_features, smiles)
    # the training cells' sketch (in memory only: for backed data it would cost another pass)
    sketch = {} if adata.isbacked else cell_sketch(adata.obs_names, expressed_genes(
        expression(adata, layer)[:, adata.var_names.get_indexer(preprocessor.genes)]))
    parts = ModelParts(preprocessor, encoder, NoiseSchedule(**schedule), network_config, library,
                       sketch, space_obj, table)
    return parts, _cells(adata, layer, parts, None if adata.isbacked else z,
                         row_sums if adata.isbacked else None)


def as_table(data, condition, dose, kind: str):
    """``(AnnData to train on, TableCodec or None)``: a DataFrame, or an AnnData with
    ``kind="tabular"``, read as a plain table where :func:`~scdiff.data.table_kind` says so
    (its columns encoded by a :class:`~scdiff.data.TableCodec`); anything else as it is."""
    check_kind(kind)
    keys = [key for given in (condition, dose)
            for key in ([given] if isinstance(given, str) else list(given or []))]
    if isinstance(data, pd.DataFrame):
        frame = data
    elif kind == "tabular" and isinstance(data, ad.AnnData) and not data.isbacked:
        frame = frame_of(data)
    elif kind == "tabular":
        raise InputError(f"{arg('kind', 'tabular')} needs a table in memory (a DataFrame, a .csv or "
                         f".parquet file, or an AnnData read without backing).")
    else:
        return data, None
    bad = [k for k in keys if k not in frame.columns]
    if bad:
        raise InputError(f"column {bad[0]!r} not found in the table; its columns are: "
                         f"{', '.join(map(str, frame.columns))}.")
    if table_kind(frame, keys, kind) == "expression":
        return frame_to_anndata(frame, keys), None
    codec = TableCodec.fit(frame, keys)
    return codec.as_anndata(frame, keys), codec


def _cells(adata, layer: str | None, parts: ModelParts, z: np.ndarray | None, row_sums) -> Cells:
    """The training cells (``z``: standardised, in memory; else read from the backed files),
    with the autoencoder's for a latent space; a PCA space is fitted on them here."""
    codes, doses = parts.encoder.encode(adata.obs)
    if adata.isbacked:
        from scdiff.data._backed import BackedCells, RowReader

        cells = Cells(BackedCells(RowReader(adata, layer), parts.preprocessor, codes, doses))
    else:
        cells = Cells(CellTensors(torch.from_numpy(z), torch.from_numpy(codes), torch.from_numpy(doses)))
    if parts.space.kind == "pca":
        fit_pca(parts.space, cells.genes)
    elif parts.space.kind == "latent":
        cells.counts = _count_cells(adata, layer, parts.preprocessor, cells.genes, row_sums)
    return cells


def _count_cells(adata, layer: str | None, pre: Preprocessor, genes, row_sums):
    """The autoencoder's training cells: every gene's counts beside the modelled genes."""
    if adata.isbacked:
        from scdiff.data._counts import BackedCountCells, no_library_sizes, total_counts_column

        sizes = (np.asarray(row_sums).ravel() if pre.input_scale == "counts"
                 else total_counts_column(adata.obs))
        if sizes is None:
            raise no_library_sizes()
        return BackedCountCells(genes.reader, pre, genes.codes, genes.doses, sizes=sizes)
    X, _ = read_expression(adata, layer, clip=pre.clip_negative)
    counts, sizes = counts_of(X, adata.obs, pre.input_scale, target_sum=pre.target_sum)
    return CountCells(genes.x.numpy(), counts, sizes)
