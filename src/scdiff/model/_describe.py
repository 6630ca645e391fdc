"""What a model is, in one line (``repr``), as plain data (``scdiff info``) and as the
provenance its samples carry."""

from __future__ import annotations

from scdiff import __version__


def provenance(model) -> dict:
    """Where generated cells come from, for their ``uns["scdiff"]``."""
    cells = {"training_cells": model.parts.training_cells} if model.parts.training_cells else {}
    return {"run": model._run_path or "", "run_id": model.run_id, "version": __version__,
            "train_seed": -1 if model.seed is None else model.seed, **cells}


def one_line(model) -> str:
    """``ConditionalDiffusion(<genes>; <space>; conditions: ...; doses: ...; <trained>)``."""
    enc, space = model.encoder, model.space
    conds = ", ".join(f"{k} ({len(c)})" for k, c in zip(enc.keys, enc.categories, strict=True))
    state = f"trained {model.train_config.steps} steps" if model.train_config else "untrained"
    where = "" if space.kind == "gene" else f"; {space.kind} space of {space.dim}"
    if model.kind == "tabular":
        return (f"ConditionalDiffusion(table of {len(model.genes)} columns; conditions: "
                f"{conds or 'none'}; doses: {', '.join(enc.dose_keys) or 'none'}; {state})")
    return (f"ConditionalDiffusion({len(model.genes)} genes{where}; conditions: {conds or 'none'}; "
            f"doses: {', '.join(enc.dose_keys) or 'none'}; {state})")


def _network(config: dict) -> dict:
    """The network's configuration, a feature table shown by its shape."""
    features = [None if f is None else f"{len(f['table'])} categories x {len(f['table'][0])} features"
                for f in config.get("features", [])]
    return {**config, **({"features": features} if features else {})}


def info(model) -> dict:
    """What the run holds, as plain data."""
    pre, enc = model.preprocessor, model.encoder
    return {
        "kind": model.kind,
        "genes": len(model.genes), "modelled_genes": len(pre.genes), "input_scale": pre.input_scale,
        "layer": pre.layer, "hvg_selected": pre.hvg, "genes_in_input": pre.n_genes_input,
        "space": {k: v for k, v in model.space.to_config().items() if k != "genes"},
        "space_train": model.space_train.to_config() if model.space_train else None,
        "conditions": dict(zip(enc.keys, enc.categories, strict=True)),
        "doses": {k: [v[0], v[-1]] if v else [] for k, v in zip(enc.dose_keys, enc.dose_values,
                                                                 strict=True)},
        "network": _network(model.network_config),
        "unmeasured": {k: u for k, u in zip(enc.keys, enc.unseen, strict=False) if u},
        "sets": {k: n for k, n in zip(enc.keys, enc.key_slots, strict=True) if n > 1},
        "parameters": sum(p.numel() for p in model.network.parameters()),
        "schedule": model.schedule.to_config(),
        "train": model.train_config.to_config() if model.train_config else None,
        "final_loss": model.log[-1]["loss"] if model.log else None,
    }
