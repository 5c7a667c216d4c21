"""A separable Gaussian blur of logit maps, with a fixed or learned sigma."""

from __future__ import annotations

import math

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="aesthal")
class GaussianBlur(keras.layers.Layer):
    """Blurs each channel of `[B, H, W, C]` with a separable Gaussian.

    The final smoothing of DeepGaze II (Kümmerer et al. 2017, "Understanding
    low- and high-level contributions to fixation prediction", ICCV): the
    readout's logits are blurred before the centre prior and the softmax.

    The kernel is `exp(-x^2 / (2 sigma^2))` at the integer offsets
    `x = -r..r`, `r = ceil(truncate * max_sigma)`, divided by its sum, applied
    along rows then columns. Borders are padded by repeating the edge value
    (as `scipy.ndimage.gaussian_filter(mode="nearest")`), so a constant map
    stays constant: zero padding would pull the border logits towards 0.

    With `learned=True` the layer holds `log_sigma` (trainable, so sigma =
    `exp(log_sigma)` stays positive); sigma is clipped to `max_sigma`, which
    fixes the kernel size. With `learned=False` there is no weight.

    Args:
        sigma: the (initial) standard deviation in pixels of the input, > 0.
        learned: train sigma.
        max_sigma: largest sigma the kernel can hold; defaults to `sigma`
            when fixed and `2 * sigma` when learned.
        truncate: the kernel spans `+-ceil(truncate * max_sigma)` pixels.

    Call args:
        inputs: float `[B, H, W, C]`.

    Returns:
        float32 `[B, H, W, C]`, the blurred maps.
    """

    def __init__(
        self,
        sigma: float,
        learned: bool = False,
        max_sigma: float | None = None,
        truncate: float = 3.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not sigma > 0:
            raise ValueError(f"GaussianBlur: sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.learned = bool(learned)
        if max_sigma is None:
            max_sigma = 2.0 * self.sigma if self.learned else self.sigma
        if max_sigma < self.sigma:
            raise ValueError(
                f"GaussianBlur: max_sigma ({max_sigma}) is below sigma ({sigma})"
            )
        self.max_sigma = float(max_sigma)
        self.truncate = float(truncate)
        self.radius = max(1, int(math.ceil(self.truncate * self.max_sigma)))
        self.log_sigma = None

    def build(self, input_shape):
        if self.learned:
            self.log_sigma = self.add_weight(
                name="log_sigma",
                shape=(),
                initializer=keras.initializers.Constant(math.log(self.sigma)),
                trainable=True,
            )

    def current_sigma(self):
        """The sigma in use: a float32 scalar tensor."""
        if self.log_sigma is None:
            return keras.ops.convert_to_tensor(self.sigma, "float32")
        return keras.ops.minimum(
            keras.ops.exp(keras.ops.cast(self.log_sigma, "float32")), self.max_sigma
        )

    def kernel_1d(self):
        """The normalised 1-D kernel: float32 `[2 * radius + 1]`."""
        offsets = keras.ops.convert_to_tensor(
            np.arange(-self.radius, self.radius + 1, dtype=np.float32)
        )
        sigma = self.current_sigma()
        weights = keras.ops.exp(-(offsets**2) / (2.0 * sigma**2))
        return weights / keras.ops.sum(weights)

    def call(self, inputs):
        x = keras.ops.cast(inputs, "float32")
        channels = x.shape[-1]
        kernel = self.kernel_1d()
        size = 2 * self.radius + 1
        column = keras.ops.tile(
            keras.ops.reshape(kernel, (size, 1, 1, 1)), (1, 1, channels, 1)
        )
        row = keras.ops.reshape(column, (1, size, channels, 1))
        x = _pad_edge(x, self.radius, axis=1)
        x = keras.ops.depthwise_conv(x, column, padding="valid")
        x = _pad_edge(x, self.radius, axis=2)
        return keras.ops.depthwise_conv(x, row, padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sigma": self.sigma,
                "learned": self.learned,
                "max_sigma": self.max_sigma,
                "truncate": self.truncate,
            }
        )
        return config


def _pad_edge(x, radius: int, axis: int):
    """Pads `radius` copies of the first/last slice along `axis` (1 or 2)."""
    length = x.shape[axis]
    first = keras.ops.take(x, [0] * radius, axis=axis)
    last = keras.ops.take(x, [length - 1] * radius, axis=axis)
    return keras.ops.concatenate([first, x, last], axis=axis)
