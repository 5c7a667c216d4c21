"""The network: trunks from `aesthal.trunks`, task heads, `AesthalModel`.

Training lives in `aesthal.training` (`Trainer`); this package holds only what
a saved or exported model needs.
"""

from aesthal.models.aesthal_model import AesthalModel, build_model
from aesthal.models.aesthetics_head import AestheticsHead
from aesthal.models.loading import ModelLoadError, load_model
from aesthal.models.saliency_head import SaliencyHead
from aesthal.models.sharing import CrossStitchUnit, coupling_loss

__all__ = [
    "AesthalModel",
    "AestheticsHead",
    "CrossStitchUnit",
    "ModelLoadError",
    "SaliencyHead",
    "build_model",
    "coupling_loss",
    "load_model",
]
