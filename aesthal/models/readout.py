"""The DeepGaze II readout: 1x1 convolutions over several depths' features."""

from __future__ import annotations

import keras
import numpy as np

from aesthal.models.blur import GaussianBlur
from aesthal.models.priors import CentreBiasPrior
from aesthal.models.saliency_head import spatial_log_softmax


@keras.saving.register_keras_serializable(package="aesthal")
class Readout(keras.layers.Layer):
    """Turns several feature taps into a per-pixel log-density, as DeepGaze II.

    Kümmerer, Wallis, Gatys, Bethge 2017, "Understanding low- and high-level
    contributions to fixation prediction" (ICCV): the taps are resized
    (bilinear) to one `readout_size` and concatenated; a stack of 1x1
    convolutions with softplus (`hidden_channels`, e.g. 16-32-2) and a last
    1x1 convolution to one channel give a logit per readout pixel; the logits
    are optionally blurred (`GaussianBlur`, sigma in readout pixels), resized
    (bilinear) to `output_size`, optionally shifted by a log centre prior
    (`CentreBiasPrior`), and a log-softmax over all `H * W` pixels gives the
    log-density.

    Args:
        taps: names of the taps to read (keys of the trunk's output dict).
        output_size: `(height, width)` of the output map (the model input size).
        hidden_channels: widths of the softplus 1x1 convolutions.
        readout_size: `(h, w)` the taps are resized to; None means the
            largest tap's size.
        layer_norm: normalise each tap over its channels (LayerNormalization,
            as DeepGaze IIE) before concatenating; VGG's ReLU features span
            several orders of magnitude across depths.
        blur_sigma: sigma of the logits' blur in readout pixels, or None.
        learn_blur: train the blur's sigma.
        prior_grid: `(gh, gw)` of the centre prior, or None for no prior;
            taken from `log_prior` when that is given.
        log_prior: float `[gh, gw]` initial log centre prior (see
            `priors.centre_bias_log_density`); not in `get_config`, the
            saved weights carry it.
        learn_prior: train the prior map.

    Call args:
        features: dict `{tap: float [B, h, w, c]}` holding at least `taps`.

    Returns:
        float32 `[B, height, width, 1]`: the log-density (values <= 0,
        `logsumexp` over pixels is 0).
    """

    def __init__(
        self,
        taps: tuple[str, ...] | list[str],
        output_size: tuple[int, int] | list[int],
        hidden_channels: tuple[int, ...] | list[int] = (16, 32, 2),
        readout_size: tuple[int, int] | list[int] | None = None,
        layer_norm: bool = False,
        blur_sigma: float | None = None,
        learn_blur: bool = False,
        prior_grid: tuple[int, int] | list[int] | None = None,
        log_prior: np.ndarray | None = None,
        learn_prior: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not taps:
            raise ValueError("Readout: give at least one tap")
        self.taps = tuple(taps)
        self.output_size = tuple(int(v) for v in output_size)
        self.hidden_channels = tuple(int(c) for c in hidden_channels)
        self.readout_size = (
            None if readout_size is None else tuple(int(v) for v in readout_size)
        )
        self.layer_norm = bool(layer_norm)
        self.blur_sigma = None if blur_sigma is None else float(blur_sigma)
        self.learn_blur = bool(learn_blur)
        self.learn_prior = bool(learn_prior)

        # === Layers ===
        self.norms = (
            [
                keras.layers.LayerNormalization(axis=-1, name=f"norm_{tap}")
                for tap in self.taps
            ]
            if self.layer_norm
            else []
        )
        self.hidden = [
            keras.layers.Conv2D(width, 1, activation="softplus", name=f"conv_{i}")
            for i, width in enumerate(self.hidden_channels)
        ]
        # No bias: the spatial softmax is invariant to a constant shift.
        self.logits = keras.layers.Conv2D(1, 1, use_bias=False, name="logits")
        self.blur = (
            None
            if self.blur_sigma is None
            else GaussianBlur(self.blur_sigma, learned=self.learn_blur, name="blur")
        )
        self.prior = None
        if prior_grid is not None or log_prior is not None:
            self.prior = CentreBiasPrior(
                grid_shape=prior_grid,
                log_prior=log_prior,
                learned=self.learn_prior,
                name="prior",
            )
        self.prior_grid = None if self.prior is None else self.prior.grid_shape

    def build(self, input_shape):
        missing = [t for t in self.taps if t not in input_shape]
        if missing:
            raise ValueError(
                f"Readout: taps {missing} are not among the features "
                f"{sorted(input_shape)}"
            )
        if self.readout_size is None:
            self._readout_hw = max(
                (tuple(input_shape[t][1:3]) for t in self.taps),
                key=lambda s: s[0] * s[1],
            )
        else:
            self._readout_hw = self.readout_size
        if self.layer_norm:
            for tap, norm in zip(self.taps, self.norms, strict=True):
                norm.build(input_shape[tap])
        width = sum(int(input_shape[t][-1]) for t in self.taps)
        for conv in self.hidden:
            conv.build((None, *self._readout_hw, width))
            width = conv.filters
        self.logits.build((None, *self._readout_hw, width))
        if self.blur is not None:
            self.blur.build((None, *self._readout_hw, 1))
        if self.prior is not None:
            self.prior.build((None, *self.output_size, 1))

    def call(self, features):
        maps = []
        for index, tap in enumerate(self.taps):
            x = keras.ops.cast(features[tap], self.compute_dtype)
            if self.norms:
                x = self.norms[index](x)
            if tuple(x.shape[1:3]) != self._readout_hw:
                x = keras.ops.image.resize(
                    x, self._readout_hw, interpolation="bilinear"
                )
            maps.append(x)
        x = maps[0] if len(maps) == 1 else keras.ops.concatenate(maps, axis=-1)
        for conv in self.hidden:
            x = conv(x)
        logits = keras.ops.cast(self.logits(x), "float32")
        if self.blur is not None:
            logits = self.blur(logits)
        if self._readout_hw != self.output_size:
            logits = keras.ops.image.resize(
                logits, self.output_size, interpolation="bilinear"
            )
        if self.prior is not None:
            logits = self.prior(logits)
        return spatial_log_softmax(logits, self.output_size)

    def compute_output_shape(self, input_shape):
        first = input_shape[self.taps[0]]
        return (first[0], *self.output_size, 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "taps": list(self.taps),
                "output_size": list(self.output_size),
                "hidden_channels": list(self.hidden_channels),
                "readout_size": (
                    None if self.readout_size is None else list(self.readout_size)
                ),
                "layer_norm": self.layer_norm,
                "blur_sigma": self.blur_sigma,
                "learn_blur": self.learn_blur,
                "prior_grid": (
                    None if self.prior_grid is None else list(self.prior_grid)
                ),
                "learn_prior": self.learn_prior,
            }
        )
        return config
