"""The tiny trunks: four stride-2 conv stages, for tests and quick runs.

`"tiny"` (BatchNormalization) and `"tiny_gn"` (GroupNormalization), about 47k
weights each, no pretrained weights (a path to a tiny-trunk weights file may
be given). Input scaling `"tf"`: `x / 127.5 - 1`.
"""

from __future__ import annotations

import keras

#: Trunk name -> input scaling (`aesthal.trunks.base.TrunkPreprocessing`).
TRUNKS = {"tiny": "tf", "tiny_gn": "tf"}
_CHANNELS = (16, 32, 48, 64)
# tiny_gn: groups of GroupNormalization in each stage (2, 4, 6, 8 channels).
_GROUPS = 8


def tiny_taps(x, group_norm: bool = False) -> dict:
    """Four stride-2 stages of conv3x3-norm-ReLU on the scaled images `x`.

    With `group_norm` (backbone `"tiny_gn"`) each BatchNormalization is a
    GroupNormalization of `_GROUPS` groups instead: every example is
    normalised with its own statistics, in training as in inference, so an
    example's features do not depend on the rest of its batch.

    Returns:
        `{"stage1": ..., "stage4": ...}`, strides 2, 4, 8 and 16.
    """
    taps = {}
    for index, channels in enumerate(_CHANNELS, start=1):
        x = keras.layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            name=f"tiny_stage{index}_conv",
        )(x)
        if group_norm:
            x = keras.layers.GroupNormalization(_GROUPS, name=f"tiny_stage{index}_gn")(
                x
            )
        else:
            # Synchronized: under tf.distribute the batch statistics are those
            # of the global batch, so N replicas train exactly like one device.
            x = keras.layers.BatchNormalization(
                synchronized=True, name=f"tiny_stage{index}_bn"
            )(x)
        x = keras.layers.ReLU(name=f"tiny_stage{index}_relu")(x)
        taps[f"stage{index}"] = x
    return taps


def build(
    backbone: str, inputs, scaled, weights_path: str | None, name: str
) -> keras.Model:
    """The trunk `backbone` on `scaled` (the scaled `inputs`), its weights loaded.

    Args:
        backbone: `"tiny"` or `"tiny_gn"`.
        inputs: the `keras.Input` of the 0..255 images.
        scaled: `inputs` after `TrunkPreprocessing`.
        weights_path: a weights file of this trunk, or None (random).
        name: the model's name.
    """
    model = keras.Model(
        inputs, tiny_taps(scaled, group_norm=backbone == "tiny_gn"), name=name
    )
    if weights_path is not None:
        model.load_weights(weights_path)
    return model
