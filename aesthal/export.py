"""Export an `AesthalModel` as a self-contained TensorFlow SavedModel.

The SavedModel needs only TensorFlow to load (`tf.saved_model.load`), not
aesthal nor Keras objects. Its `serving_default` signature:

    inputs:  images           uint8 [B, h, w, 3], any h, w (one size per batch)
    outputs: saliency         float32 [B, h, w, 1], a density at the input's size
                              (sums to 1 per image)
             aesthetics       float32 [B, 10], a distribution over scores 1..10
             aesthetics_mean  float32 [B], the expected score, in 1..10

Resize policy (the same as `aesthal.data`): the image is *stretched* to the
model's `input_size` (bilinear, antialiased, ignoring aspect ratio); the
predicted density is stretched back to `(h, w)` the same way, clipped at 0 and
renormalised to sum 1. Side heads are not exported.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from aesthal.models.aesthal_model import AesthalModel


def serving_function(model: AesthalModel):
    """The exported computation, as a plain function of uint8 images.

    `aesthal.inference.Predictor` wraps a `.keras` model in this same function,
    so in-memory, `.keras` and SavedModel predictions agree.

    Args:
        model: a built `AesthalModel`.

    Returns:
        `serve(images)`: uint8 `[B, h, w, 3]` -> the dict of the module docstring.
    """
    height, width = model.config.input_size
    scores = tf.range(1, 11, dtype=tf.float32)

    def serve(images):
        input_hw = tf.shape(images)[1:3]
        x = tf.image.resize(
            tf.cast(images, tf.float32), (height, width), "bilinear", antialias=True
        )
        x = tf.clip_by_value(x, 0.0, 255.0)
        outputs = model(x, training=False)
        saliency = tf.image.resize(
            tf.cast(outputs["saliency"], tf.float32),
            input_hw,
            "bilinear",
            antialias=True,
        )
        saliency = tf.nn.relu(saliency)
        saliency = saliency / tf.reduce_sum(saliency, axis=[1, 2, 3], keepdims=True)
        aesthetics = tf.cast(outputs["aesthetics"], tf.float32)
        return {
            "saliency": saliency,
            "aesthetics": aesthetics,
            "aesthetics_mean": tf.reduce_sum(aesthetics * scores, axis=-1),
        }

    return serve


def export_saved_model(model: AesthalModel, path: str | os.PathLike) -> str:
    """Writes `model` as a SavedModel with the `serving_default` signature above.

    Args:
        model: a built `AesthalModel`.
        path: output folder (created; must not hold another SavedModel).

    Returns:
        The path, as a string.
    """
    if not isinstance(model, AesthalModel):
        raise TypeError(
            f"export_saved_model expects an AesthalModel; got {type(model).__name__}."
        )
    serve = serving_function(model)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.write_out(os.fspath(path), verbose=False)
    return os.fspath(path)
