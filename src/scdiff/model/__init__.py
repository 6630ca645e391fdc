"""The model: :class:`ConditionalDiffusion` and the modules that do its work.

- ``_setup``: the parts of a model (preprocessing, conditions, schedule, network config),
  from an AnnData or a run's config;
- ``_fit``: training (configuration, monitor, checkpoints, resumption);
- ``_generate`` and ``_stream``: generation, and writing it to a file;
- ``_translate``: the inputs of counterfactual translation (``from_``);
- ``_run``: the run directory (files, log, checkpoint, the folder's policy);
- ``_monitor``: the MMD to held-out cells during training.
"""

from scdiff.model._fit import auto_steps
from scdiff.model._model import ConditionalDiffusion
from scdiff.model._setup import ModelParts
from scdiff.model._stream import STREAM_CHUNK

__all__ = ["STREAM_CHUNK", "ConditionalDiffusion", "ModelParts", "auto_steps"]
