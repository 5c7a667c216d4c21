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
renormalised to sum 1 (`to_model_input` and `to_image_size` below). Side heads
are not exported.

Two more signatures let a caller batch images of *different* sizes: resize
each image to the model size itself (as `to_model_input` does), batch, predict,
and resize each map back (as `to_image_size` does). `aesthal.inference.Predictor`
does exactly that.

    input_size              no inputs
                            -> input_size  int32 [2], the model's (H, W)
    predict_at_model_size   images  float32 [B, H, W, 3], 0..255, at input_size
                            -> saliency    float32 [B, H, W, 1], the model's
                                           density at its own size (sums to 1)
                               aesthetics  float32 [B, 10]

SavedModels written before these two signatures existed have only
`serving_default`; `Predictor` still reads them.

Trained tasks. Only the outputs of the tasks the model was trained on
(`ModelConfig.tasks`) are in the signatures: a saliency-only model's
signatures return `saliency` alone, an aesthetics-only model's `aesthetics`
(and `aesthetics_mean`) alone. The output keys are the SavedModel's record of
its tasks (`trained_tasks` reads it); SavedModels written before this rule
return every key and count as trained on both tasks.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from aesthal.config import SCORES, TASKS
from aesthal.data.preprocess import stretch_images
from aesthal.models.aesthal_model import AesthalModel

#: Names of the signatures beyond `serving_default`.
INPUT_SIZE_SIGNATURE = "input_size"
MODEL_SIZE_SIGNATURE = "predict_at_model_size"


def to_model_input(images: tf.Tensor, input_size: Sequence[int] | tf.Tensor):
    """Stretches images to the model's input size (the export's first step).

    Args:
        images: uint8 or float `[B, h, w, 3]`, values in 0..255.
        input_size: the model's `(H, W)`.

    Returns:
        float32 `[B, H, W, 3]`, bilinear and antialiased, clipped to 0..255.
    """
    return stretch_images(images, input_size)


def to_image_size(saliency: tf.Tensor, image_size: Sequence[int] | tf.Tensor):
    """Stretches predicted maps back to the image size (the export's last step).

    Args:
        saliency: float `[B, H, W, 1]`, the model's maps.
        image_size: the images' `(h, w)`.

    Returns:
        float32 `[B, h, w, 1]`: bilinear and antialiased, clipped at 0,
        renormalised to sum 1 per image.
    """
    density = tf.image.resize(
        tf.cast(saliency, tf.float32), image_size, "bilinear", antialias=True
    )
    density = tf.nn.relu(density)
    return density / tf.reduce_sum(density, axis=[1, 2, 3], keepdims=True)


def upsample_density(density: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """`to_image_size` for a map enlarged in both directions.

    When the image is at least the model's size in both directions, the
    export's antialiased bilinear resize is plain bilinear interpolation (its
    triangle kernel at a scale >= 1, pixel centres at +0.5, the border pixel
    repeated), which OpenCV computes about ten times faster; the results agree
    within float32 round-off (`tests/test_export.py`). Clipped at 0 and
    renormalised to sum 1, as the export does.

    Args:
        density: float `[H, W]`, the model's map.
        size: the image's `(h, w)`, `h >= H` and `w >= W`.

    Returns:
        float32 `[h, w]`, summing to 1.
    """
    height, width = int(size[0]), int(size[1])
    enlarged = cv2.resize(
        np.asarray(density, np.float32), (width, height), interpolation=cv2.INTER_LINEAR
    )
    enlarged = np.maximum(enlarged, 0.0)
    return (enlarged / enlarged.sum(dtype=np.float64)).astype(np.float32)


def model_size_function(model: AesthalModel) -> Callable[[tf.Tensor], dict]:
    """The model at its own input size, outputs cast to float32.

    Args:
        model: a built `AesthalModel`.

    Returns:
        `predict(images)`: float32 `[B, H, W, 3]` (0..255, at the model's input
        size) -> `{"saliency": float32 [B, H, W, 1], "aesthetics": float32 [B, 10]}`,
        with only the keys of `model.config.tasks`.
    """

    def predict(images):
        outputs = model(images, training=False)
        return {task: tf.cast(outputs[task], tf.float32) for task in model.config.tasks}

    return predict


def serving_function(model: AesthalModel) -> Callable[[tf.Tensor], dict]:
    """The exported computation, as a plain function of uint8 images.

    `aesthal.inference.Predictor` runs the same three steps per image
    (`to_model_input`, the model, `to_image_size`), so in-memory, `.keras` and
    SavedModel predictions agree.

    Args:
        model: a built `AesthalModel`.

    Returns:
        `serve(images)`: uint8 `[B, h, w, 3]` -> the dict of the module
        docstring (the keys of the trained tasks only).
    """
    input_size = tuple(model.config.input_size)
    predict = model_size_function(model)
    scores = tf.constant(SCORES, tf.float32)

    def serve(images):
        outputs = predict(to_model_input(images, input_size))
        served = {}
        if "saliency" in outputs:
            served["saliency"] = to_image_size(
                outputs["saliency"], tf.shape(images)[1:3]
            )
        if "aesthetics" in outputs:
            aesthetics = outputs["aesthetics"]
            served["aesthetics"] = aesthetics
            served["aesthetics_mean"] = tf.reduce_sum(aesthetics * scores, axis=-1)
        return served

    return serve


def export_saved_model(model: AesthalModel, path: str | os.PathLike) -> str:
    """Writes `model` as a SavedModel with the signatures of the module docstring.

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
    height, width = model.config.input_size

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serving_function(model),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        MODEL_SIZE_SIGNATURE,
        model_size_function(model),
        input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
        ],
    )
    archive.add_endpoint(
        INPUT_SIZE_SIGNATURE,
        lambda: {"input_size": tf.constant([height, width], tf.int32)},
        input_signature=[],
    )
    archive.write_out(os.fspath(path), verbose=False)
    return os.fspath(path)


def trained_tasks(output_keys) -> tuple[str, ...]:
    """The tasks a SavedModel signature's output keys show it was trained on.

    Args:
        output_keys: the keys of `serving_default` (or `predict_at_model_size`).

    Returns:
        The tasks of `TASKS` whose output is among the keys (an old SavedModel,
        with every key: both).
    """
    keys = set(output_keys)
    return tuple(task for task in TASKS if task in keys)


def export_run(model: AesthalModel, output_dir: str | os.PathLike) -> str:
    """Writes `saved_model/` (and `model.keras` if missing) under `output_dir`.

    The SavedModel is written to `saved_model.partial/` and renamed when
    complete, so a `saved_model/` folder is always a whole export (a kill
    during the export leaves the previous one, or none).

    Args:
        model: the model (`aesthal.inference.load_model` reads one from a file).
        output_dir: a run directory.

    Returns:
        The SavedModel's path, `output_dir/saved_model`.
    """
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "model.keras").exists():
        model.save(out / "model.keras")
    final, partial = out / "saved_model", out / "saved_model.partial"
    if partial.exists():
        shutil.rmtree(partial)
    export_saved_model(model, partial)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return os.fspath(final)
