"""Training runs: optimizers from a `TrainConfig`, callbacks, resume, `fit`.

The model owns its training step (`aesthal.models.AesthalModel`); this package
runs it: `runner.train(ExperimentConfig)` writes a run directory.
"""

from aesthal.training.callbacks import (
    NonFiniteLossError,
    SaliencyImageLogger,
    StopOnNonFinite,
)
from aesthal.training.runner import build_optimizers, compile_model, train

__all__ = [
    "NonFiniteLossError",
    "SaliencyImageLogger",
    "StopOnNonFinite",
    "build_optimizers",
    "compile_model",
    "train",
]
