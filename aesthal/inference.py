"""Predictions at each image's own size, from a model, a `.keras` file or a SavedModel.

`Predictor` gives the same answer whichever form the model is in: a `.keras`
model is wrapped in the very serving function that `export_saved_model`
writes (stretch the image to the model size, predict, stretch the density back
and renormalise), and a SavedModel is called through its `serving_default`.

    predictor = Predictor("runs/quickstart/saved_model")
    outputs = predictor.predict(image)   # uint8 [h, w, 3]
    outputs["saliency"]                  # float32 [h, w], sums to 1
    outputs["aesthetics"]                # float32 [10]
    outputs["aesthetics_mean"]           # float, 1..10
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from aesthal.export import serving_function
from aesthal.models import AesthalModel


def load_model(path: str | os.PathLike) -> AesthalModel:
    """Loads a `.keras` AesthalModel in Keras safe mode (no pickle, no lambdas).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a `.keras` file, or not an AesthalModel.
    """
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: expected a .keras file or a SavedModel folder")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path}")
    model = keras.models.load_model(path, safe_mode=True)
    if not isinstance(model, AesthalModel):
        raise ValueError(f"{path} holds a {type(model).__name__}, not an AesthalModel")
    return model


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Converts a decoded image to uint8 RGB `[h, w, 3]`.

    Grayscale (`[h, w]` or `[h, w, 1]`) is repeated to 3 channels, RGBA drops
    alpha, 16-bit images are scaled to 8 bits, float images are taken as 0..255.

    Raises:
        ValueError: a shape that is no image, naming `name`.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an image [h, w, 1|3|4], got {image.shape}")
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round()
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float32)), 0, 255).astype(
            np.uint8
        )
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


class Predictor:
    """Runs a saliency + aesthetics model on images of any size.

    Args:
        model: an `AesthalModel`, a path to a `.keras` file, or a SavedModel
            folder written by `aesthal.export_saved_model`.
    """

    def __init__(self, model: AesthalModel | str | os.PathLike):
        self.source = (
            model.name if isinstance(model, AesthalModel) else os.fspath(model)
        )
        if not isinstance(model, AesthalModel) and os.path.isdir(model):
            loaded = tf.saved_model.load(os.fspath(model))
            if "serving_default" not in loaded.signatures:
                raise ValueError(
                    f"{self.source}: the SavedModel has no serving_default"
                )
            signature = loaded.signatures["serving_default"]
            self._loaded = loaded  # keeps the variables alive
            self._serve = lambda images: signature(images=images)
            return
        if not isinstance(model, AesthalModel):
            model = load_model(model)
        self._serve = tf.function(
            serving_function(model),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
            reduce_retracing=True,
        )

    def predict_batch(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Predicts a batch of same-size images.

        Args:
            images: uint8 `[B, h, w, 3]`.

        Returns:
            `{"saliency": float32 [B, h, w], "aesthetics": float32 [B, 10],
              "aesthetics_mean": float32 [B]}`.
        """
        outputs = self._serve(tf.convert_to_tensor(images, tf.uint8))
        return {
            "saliency": outputs["saliency"].numpy()[..., 0],
            "aesthetics": outputs["aesthetics"].numpy(),
            "aesthetics_mean": outputs["aesthetics_mean"].numpy(),
        }

    def predict(self, image: np.ndarray) -> dict[str, Any]:
        """Predicts one image (uint8 or float 0..255, gray, RGB or RGBA)."""
        batch = self.predict_batch(as_rgb_uint8(image)[None])
        return {key: value[0] for key, value in batch.items()}

    def predict_many(
        self, images: Iterable[np.ndarray], batch_size: int = 8
    ) -> Iterator[dict[str, Any]]:
        """Predicts a stream of images, batching consecutive same-size images."""
        for _, outputs in self.predict_pairs(((None, im) for im in images), batch_size):
            yield outputs

    def predict_examples(
        self, examples: Iterable[Any], batch_size: int = 8, limit: int | None = None
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Predicts objects with an `.image` attribute; yields `(example, outputs)`."""
        pairs = ((ex, ex.image) for ex in examples)
        if limit is not None:
            pairs = (pair for _, pair in zip(range(limit), pairs, strict=False))
        yield from self.predict_pairs(pairs, batch_size)

    def predict_pairs(
        self, pairs: Iterable[tuple[Any, np.ndarray]], batch_size: int
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Predicts `(key, image)` pairs lazily; yields `(key, outputs)` in order.

        Consecutive images of the same size share a batch (at most
        `batch_size`); only one batch is held in memory.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        keys: list[Any] = []
        images: list[np.ndarray] = []

        def flush() -> Iterator[tuple[Any, dict[str, Any]]]:
            outputs = self.predict_batch(np.stack(images))
            for i, key in enumerate(keys):
                yield key, {name: value[i] for name, value in outputs.items()}
            keys.clear()
            images.clear()

        for key, image in pairs:
            image = as_rgb_uint8(image)
            if images and (image.shape != images[0].shape or len(images) >= batch_size):
                yield from flush()
            keys.append(key)
            images.append(image)
        if images:
            yield from flush()


def predict_images(
    model: AesthalModel | str | os.PathLike, images: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """Predicts a list of arrays; see `Predictor.predict`."""
    return list(Predictor(model).predict_many(images))
