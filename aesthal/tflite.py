"""TensorFlow Lite export of an `AesthalModel`, and a predictor that runs it.

    import aesthal
    from aesthal import tflite

    tflite.export_tflite(aesthal.released.load_model(), "aesthal.tflite")
    predictor = tflite.TFLitePredictor("aesthal.tflite")
    predictor.predict(image)["saliency"]   # float32 [h, w], sums to 1

The `.tflite` file holds the network at its own input size, batch 1, float32
weights (no quantisation: the maps then equal the Keras model's within float
round-off; `docs/model_card.md` states the measured difference):

    inputs:  images      float32 [1, H, W, 3], 0..255, at the model's input size
    outputs: saliency    float32 [1, H, W, 1], the density (sums to 1)
             aesthetics  float32 [1, 10] (only for models trained on aesthetics)

A phone app or any other LiteRT / TensorFlow Lite runtime stretches the image
to `(H, W)` itself and the map back to the image's size, as
`aesthal.export.to_model_input` and `to_image_size` do (bilinear; the map then
clipped at 0 and renormalised to sum 1). `TFLitePredictor` does exactly those
steps around the interpreter, so that its maps can be compared with
`aesthal.inference.Predictor`'s.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from aesthal import export
from aesthal.config import SCORES
from aesthal.models.aesthal_model import AesthalModel


def export_tflite(model: AesthalModel, path: str | os.PathLike) -> str:
    """Writes `model` (at its input size, batch 1) as a `.tflite` file.

    Args:
        model: a built `AesthalModel`.
        path: the file to write.

    Returns:
        `path`, as a string.

    Raises:
        OSError: `path` cannot be written (naming it).
    """
    height, width = model.config.input_size
    spec = tf.TensorSpec([1, height, width, 3], tf.float32, "images")
    concrete = tf.function(
        export.model_size_function(model), input_signature=[spec]
    ).get_concrete_function()
    # The weights become constants: a converter given the model's variables
    # keeps them as resource variables, which TensorFlow Lite's interpreter
    # leaves uninitialised (all-NaN outputs). Freezing loses the output names,
    # so they are given back by rank: saliency [1, H, W, 1], aesthetics [1, 10].
    frozen = convert_variables_to_constants_v2(concrete)

    @tf.function(input_signature=[spec])
    def named(images):
        outputs = tf.nest.flatten(frozen(images))
        return {
            ("saliency" if output.shape.rank == 4 else "aesthetics"): output
            for output in outputs
        }

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [named.get_concrete_function()], tf.Module()
    )
    data = converter.convert()
    path = pathlib.Path(path)
    try:
        path.write_bytes(data)
    except OSError as error:
        raise OSError(f"cannot write {path}: {error.strerror or error}") from error
    return str(path)


class TFLitePredictor:
    """Predicts images of any size with a `.tflite` file `export_tflite` wrote.

    Args:
        path: the `.tflite` file.
        num_threads: interpreter threads (None: TensorFlow Lite's default).

    Raises:
        ValueError: the file is not a TensorFlow Lite model of that form
            (naming the file).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = str(path)
        try:
            with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation
                warnings.simplefilter("ignore")
                self._interpreter = tf.lite.Interpreter(
                    model_path=self.path, num_threads=num_threads
                )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ValueError(
                f"{self.path}: not a TensorFlow Lite model ({error})"
            ) from error
        self._runner = self._interpreter.get_signature_runner()
        details = self._runner.get_input_details()
        if list(details) != ["images"] or len(details["images"]["shape"]) != 4:
            raise ValueError(
                f"{self.path}: expected one input 'images' [1, H, W, 3], got "
                f"{ {k: list(v['shape']) for k, v in details.items()} }"
            )
        self.input_size = tuple(int(v) for v in details["images"]["shape"][1:3])
        self.tasks = tuple(
            task
            for task in ("saliency", "aesthetics")
            if task in self._runner.get_output_details()
        )

    def predict(self, image: np.ndarray) -> dict[str, Any]:
        """One RGB uint8 image `[h, w, 3]` -> `{"saliency": [h, w], ...}`.

        The outputs are those of `aesthal.inference.Predictor.predict`: the
        saliency density at the image's size (sums to 1) and, for a model
        trained on aesthetics, `aesthetics` (10 probabilities) and
        `aesthetics_mean`.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"expected an RGB uint8 image [h, w, 3], got {image.dtype} "
                f"{list(image.shape)}"
            )
        inputs = export.to_model_input(image[None], self.input_size).numpy()
        outputs = self._runner(images=inputs.astype(np.float32))
        result: dict[str, Any] = {}
        if "saliency" in outputs:
            density = export.to_image_size(outputs["saliency"], image.shape[:2])
            result["saliency"] = density.numpy()[0, ..., 0]
        if "aesthetics" in outputs:
            aesthetics = np.asarray(outputs["aesthetics"][0], np.float32)
            result["aesthetics"] = aesthetics
            result["aesthetics_mean"] = np.float32(
                aesthetics @ np.asarray(SCORES, np.float32)
            )
        return result
