"""The centre-bias prior: a log-density added to saliency logits."""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from aesthal.metrics import baselines

# A floor mixed into the fitted density so that its log is finite everywhere.
DEFAULT_UNIFORM_WEIGHT = 1e-3


def centre_bias_log_density(
    fixations_per_image: Iterable[tuple[np.ndarray, tuple[int, int]]],
    grid_shape: tuple[int, int] = (24, 32),
    sigma_fraction: float = 0.05,
    uniform_weight: float = DEFAULT_UNIFORM_WEIGHT,
) -> np.ndarray:
    """The log of the training fixations' density, for `CentreBiasPrior`.

    The histogram, blur and normalisation are `baselines.fit_centre_bias`
    (each point to its nearest cell of a `grid_shape` grid, a Gaussian of
    `sigma_fraction * max(grid_shape)` cells, divided by the sum), mixed with
    `uniform_weight` of the uniform density so that the log is finite; this
    is the prior of DeepGaze II (Kümmerer et al. 2017), which adds the log
    density of the training fixations to its logits.

    Args:
        fixations_per_image: `(points, (height, width))` pairs; `points` float
            `[N, 2]` of 0-based `(row, col)` in that image's pixels.
        grid_shape: `(gh, gw)` of the returned map.
        sigma_fraction: blur sigma as a fraction of the grid's longer side.
        uniform_weight: weight of the uniform floor, in (0, 1].

    Returns:
        float32 `[gh, gw]`; `exp` of it sums to 1.

    Raises:
        ValueError: no fixations, or `uniform_weight` is not in (0, 1].
    """
    if not 0.0 < uniform_weight <= 1.0:
        raise ValueError(
            f"uniform_weight must be in (0, 1] (the log of 0 is -inf), got "
            f"{uniform_weight}"
        )
    density = baselines.fit_centre_bias(
        fixations_per_image,
        grid_shape=grid_shape,
        sigma_fraction=sigma_fraction,
        uniform_weight=uniform_weight,
    )
    return np.log(density).astype(np.float32)


@keras.saving.register_keras_serializable(package="aesthal")
class CentreBiasPrior(keras.layers.Layer):
    """Adds a low-resolution log centre-bias map to `[B, H, W, 1]` logits.

    The map (`[gh, gw]`) is resized bilinearly to the logits' `H x W` and
    added to every image's logits; a log-softmax after it makes the sum a
    log-density proportional to `prior * exp(logits)` (DeepGaze II). The map
    is a weight of the layer, so `.keras` files and SavedModels carry it:

    - `learned=False` (fixed): a non-trainable weight, usually the output of
      `centre_bias_log_density` on the training split's fixations.
    - `learned=True`: a trainable low-resolution log map, initialised from
      `log_prior` (or zeros, the uniform prior) and learned with the rest of
      the model (a free-form version of SAM's learned Gaussian priors).

    `log_prior` is an initial value, not part of `get_config`: a loaded model
    gets the map from its saved weights.

    Args:
        grid_shape: `(gh, gw)` of the map; taken from `log_prior` if given.
        log_prior: float `[gh, gw]` log-density, or None for zeros.
        learned: train the map.

    Call args:
        logits: float `[B, H, W, 1]`.

    Returns:
        float32 `[B, H, W, 1]`: `logits + resize(log_prior)`.
    """

    def __init__(
        self,
        grid_shape: tuple[int, int] | list[int] | None = None,
        log_prior: np.ndarray | None = None,
        learned: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if log_prior is not None:
            log_prior = np.asarray(log_prior, dtype=np.float32)
            if log_prior.ndim != 2 or not np.all(np.isfinite(log_prior)):
                raise ValueError(
                    f"CentreBiasPrior: log_prior must be a finite [gh, gw] map, "
                    f"got shape {log_prior.shape} (build it with "
                    "centre_bias_log_density, whose uniform floor keeps the log "
                    "finite)"
                )
            if grid_shape is not None and tuple(grid_shape) != log_prior.shape:
                raise ValueError(
                    f"CentreBiasPrior: grid_shape {tuple(grid_shape)} differs from "
                    f"log_prior's shape {log_prior.shape}"
                )
            grid_shape = log_prior.shape
        if grid_shape is None:
            raise ValueError("CentreBiasPrior: give grid_shape or log_prior")
        self.grid_shape = tuple(int(v) for v in grid_shape)
        self.learned = bool(learned)
        self._initial = log_prior

    def build(self, input_shape):
        initial = self._initial
        self.log_prior = self.add_weight(
            name="log_prior",
            shape=self.grid_shape,
            initializer="zeros",
            trainable=self.learned,
        )
        if initial is not None:
            self.log_prior.assign(initial)

    def call(self, logits):
        logits = keras.ops.cast(logits, "float32")
        height, width = logits.shape[1], logits.shape[2]
        prior = keras.ops.reshape(
            keras.ops.cast(self.log_prior, "float32"), (1, *self.grid_shape, 1)
        )
        if (height, width) != self.grid_shape:
            prior = keras.ops.image.resize(
                prior, (height, width), interpolation="bilinear"
            )
        return logits + prior

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"grid_shape": list(self.grid_shape), "learned": self.learned})
        return config
