"""aesthal: saliency prediction with a multi-task CNN that also learns aesthetics."""

from aesthal import crop, data, losses, metrics  # metrics registers streaming metrics
from aesthal.config import (
    BACKBONES,
    GROUPS,
    TAP_NAMES,
    TASKS,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)
from aesthal.export import export_saved_model
from aesthal.inference import (
    Ensemble,
    Predictor,
    load_model,
    make_predictor,
    predict_images,
)
from aesthal.losses import SaliencyLoss
from aesthal.models import AesthalModel, build_model
from aesthal.released import predictor as pretrained
from aesthal.training import (
    FixedWeighting,
    LossWeighting,
    Trainer,
    UncertaintyWeighting,
    validate_batch,
)

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "GROUPS",
    "TAP_NAMES",
    "TASKS",
    "AesthalModel",
    "DataConfig",
    "ExperimentConfig",
    "FixedWeighting",
    "LossWeighting",
    "ModelConfig",
    "SaliencyLoss",
    "TrainConfig",
    "Trainer",
    "UncertaintyWeighting",
    "Ensemble",
    "Predictor",
    "build_model",
    "crop",
    "data",
    "load_model",
    "make_predictor",
    "metrics",
    "predict_images",
    "pretrained",
    "export_saved_model",
    "losses",
    "validate_batch",
]
