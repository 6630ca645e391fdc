"""Data: read and validate input, preprocess expression, encode conditions."""

from scdiff.data._conditions import ConditionEncoder
from scdiff.data._io import read_input, write_h5ad
from scdiff.data._preprocess import Preprocessor, log_normalize, select_hvg
from scdiff.data._validate import detect_scale

__all__ = [
    "ConditionEncoder", "Preprocessor", "detect_scale", "log_normalize", "read_input",
    "select_hvg", "write_h5ad",
]
