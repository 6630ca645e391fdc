"""scdiff: conditional diffusion models that generate single cells."""

from scdiff._errors import InputError, RunError, ScdiffError

__version__ = "0.1.0"

__all__ = ["InputError", "RunError", "ScdiffError", "__version__"]
