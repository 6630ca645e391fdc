"""Training: tensors in, fitted weights out."""

from scdiff.train._data import CellTensors
from scdiff.train._trainer import (
    EMA,
    TrainConfig,
    Trainer,
    TrainResult,
    copy_with_state,
    drop_conditions,
    lr_at,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "EMA", "CellTensors", "TrainConfig", "TrainResult", "Trainer", "copy_with_state",
    "drop_conditions", "lr_at", "resolve_device", "resolve_precision",
]
