"""scdiff: conditional diffusion models that generate single cells.

Examples
--------
>>> import scdiff
>>> model = scdiff.ConditionalDiffusion(adata, condition="cell_type")  # doctest: +SKIP
>>> model.train()  # doctest: +SKIP
>>> fake = model.sample(like=adata_test)  # doctest: +SKIP
>>> scdiff.evaluate(adata_test, fake, condition="cell_type")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from scdiff import (  # noqa: E402
    datasets,
    evaluate,  # noqa: E402  (a callable module: scdiff.evaluate(real, fake, ...))
    perturb,
    pl,
)
from scdiff._errors import InputError, RunError, ScdiffError, TrainingInterrupted  # noqa: E402
from scdiff._model import ConditionalDiffusion  # noqa: E402

__all__ = [
    "ConditionalDiffusion", "InputError", "RunError", "ScdiffError", "TrainingInterrupted",
    "__version__", "datasets", "evaluate", "perturb", "pl",
]
