"""Training: tensors in, fitted weights out."""

from scdiff.train._data import CellTensors
from scdiff.train._distributed import distributed, is_main_process, rank, world_size
from scdiff.train._mean import ConditionMeans, fit_mean
from scdiff.train._objectives import CountObjective, DiffusionObjective, drop_conditions
from scdiff.train._state import EMA, TrainResult, copy_with_state
from scdiff.train._trainer import (
    TrainConfig,
    Trainer,
    compile_network,
    lr_at,
    resolve_device,
    resolve_precision,
    scaled_lr,
)

__all__ = [
    "EMA", "CellTensors", "ConditionMeans", "CountObjective", "DiffusionObjective", "TrainConfig",
    "TrainResult", "Trainer", "compile_network", "copy_with_state", "fit_mean",
    "distributed", "drop_conditions", "is_main_process", "lr_at", "rank", "resolve_device",
    "resolve_precision", "scaled_lr", "world_size",
]
