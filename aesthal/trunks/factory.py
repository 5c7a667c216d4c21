"""`build_backbone`: a trunk by name, with the tap contract of `aesthal.trunks.base`.

Each trunk's module (`tiny`, `keras_applications`, `efficientnet_lite`) names
its trunks and their input scaling in `TRUNKS` and builds them with
`build(backbone, inputs, scaled, weights_path, name)`; this module puts the
images' input and scaling in front.
"""

from __future__ import annotations

import keras

from aesthal.config import BACKBONES
from aesthal.trunks import efficientnet_lite, keras_applications, tiny
from aesthal.trunks.base import TrunkPreprocessing

_MODULES = {
    name: module
    for module in (tiny, keras_applications, efficientnet_lite)
    for name in module.TRUNKS
}


def build_backbone(
    backbone: str,
    input_size: tuple[int, int],
    weights_path: str | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a trunk as a functional model returning its taps.

    Args:
        backbone: one of `aesthal.config.BACKBONES`.
        input_size: `(height, width)`.
        weights_path: a local weights file for the trunk (see
            `aesthal.trunks.weights.resolve_backbone_weights`), or None for
            random initialisation.
        name: the model's name; None = `"<backbone>_backbone"`.

    Returns:
        A `keras.Model` named `name` mapping float32
        `[B, H, W, 3]` images in 0..255 to `{tap: [B, h, w, c]}`, tap names as in
        `aesthal.config.TAP_NAMES[backbone]`.

    Raises:
        ValueError: an unknown trunk name.
    """
    if backbone not in _MODULES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}.")
    module = _MODULES[backbone]
    height, width = input_size
    inputs = keras.Input((height, width, 3), name="images")
    scaled = TrunkPreprocessing(module.TRUNKS[backbone], name="trunk_preprocessing")(
        inputs
    )
    return module.build(
        backbone, inputs, scaled, weights_path, name or f"{backbone}_backbone"
    )
