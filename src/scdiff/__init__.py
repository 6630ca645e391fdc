"""scdiff: conditional diffusion models that generate single cells.

Importing scdiff is quick: each name below is imported when first used.

Examples
--------
>>> import scdiff
>>> model = scdiff.ConditionalDiffusion(adata, condition="cell_type")  # doctest: +SKIP
>>> model.train()  # doctest: +SKIP
>>> fake = model.sample(like=adata_test)  # doctest: +SKIP
>>> scdiff.evaluate(adata_test, fake, condition="cell_type")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from scdiff._errors import InputError, RunError, ScdiffError, ScdiffWarning, TrainingInterrupted

__version__ = "0.1.0"

#: Attribute -> (module, name in it); a name of None means the module itself.
_LAZY = {
    "ConditionalDiffusion": ("scdiff.model", "ConditionalDiffusion"),
    "evaluate": ("scdiff.metrics", "evaluate"),
    "evaluate_table": ("scdiff.metrics", "evaluate_table"),
    "write_report": ("scdiff._report", "write_report"),
    "commands": ("scdiff.commands", None),
    "data": ("scdiff.data", None),
    "datasets": ("scdiff.datasets", None),
    "metrics": ("scdiff.metrics", None),
    "model": ("scdiff.model", None),
    "perturb": ("scdiff.perturb", None),
    "pl": ("scdiff.pl", None),
}

if TYPE_CHECKING:  # for type checkers and editors; at run time __getattr__ imports on use
    from scdiff import commands, data, datasets, metrics, model, perturb, pl
    from scdiff._report import write_report
    from scdiff.metrics import evaluate, evaluate_table
    from scdiff.model import ConditionalDiffusion

__all__ = [
    "ConditionalDiffusion", "InputError", "RunError", "ScdiffError", "ScdiffWarning",
    "TrainingInterrupted", "__version__", "commands", "data", "datasets", "evaluate",
    "evaluate_table", "metrics", "model", "perturb", "pl", "write_report",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'scdiff' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
