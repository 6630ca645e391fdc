"""Data: read and validate input, preprocess expression, encode conditions, group cells."""

from scdiff.data._cells import cell_sketch, sketch_overlap
from scdiff.data._conditions import ConditionEncoder
from scdiff.data._groups import (
    ALL_CELLS,
    GROUP_SEP,
    align_genes,
    condition_keys,
    group_labels,
    group_order,
    select_rows,
    subsample,
    to_dense,
)
from scdiff.data._io import check_anndata, read_input, write_h5ad
from scdiff.data._preprocess import Preprocessor, as_log_space, expression, log_normalize, select_hvg
from scdiff.data._table import TableCodec, table_kind
from scdiff.data._validate import detect_scale

__all__ = [
    "ALL_CELLS", "GROUP_SEP", "ConditionEncoder", "Preprocessor", "TableCodec", "align_genes", "as_log_space",
    "cell_sketch", "check_anndata", "condition_keys", "detect_scale", "expression",
    "group_labels", "group_order", "log_normalize", "read_input", "select_hvg", "select_rows",
    "sketch_overlap", "subsample", "table_kind", "to_dense", "write_h5ad",
]
