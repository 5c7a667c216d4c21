"""The saliency decoder: fuses trunk taps into a log-density over pixels."""

from __future__ import annotations

import keras


def spatial_log_softmax(logits, size: tuple[int, int]):
    """A log-softmax over all pixels of each image: logits -> log-density.

    Args:
        logits: float32 `[B, height, width, 1]`.
        size: `(height, width)` of `logits`.

    Returns:
        float32 `[B, height, width, 1]`; `logsumexp` over the pixels is 0.
    """
    height, width = size
    flat = keras.ops.reshape(logits, (-1, height * width))
    log_density = keras.ops.log_softmax(flat, axis=-1)
    return keras.ops.reshape(log_density, (-1, height, width, 1))


@keras.saving.register_keras_serializable(package="aesthal")
class SaliencyHead(keras.layers.Layer):
    """Fuses several feature taps into a per-pixel log-density.

    Each tap goes through a 1x1 conv + ReLU to `channels`, is resized
    (bilinear) to the largest tap's resolution, and the maps are summed; a 3x3
    conv + ReLU and a 1x1 conv give one logit per pixel, which is resized
    (bilinear) to `output_size`; a log-softmax over all `H * W` pixels turns
    the logits into a log-density, so `exp(output)` sums to 1 per image.

    Args:
        taps: names of the taps to fuse (keys of the trunk's output dict).
        output_size: `(height, width)` of the output map (the model input size).
        channels: width of the decoder convolutions.

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
        channels: int = 32,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.taps = tuple(taps)
        self.output_size = tuple(int(v) for v in output_size)
        self.channels = int(channels)
        self.projections = [
            keras.layers.Conv2D(
                self.channels, 1, activation="relu", name=f"project_{tap}"
            )
            for tap in self.taps
        ]
        self.fuse = keras.layers.Conv2D(
            self.channels, 3, padding="same", activation="relu", name="fuse"
        )
        # No bias: the spatial softmax is invariant to a constant shift, so a
        # bias would get a zero gradient (only round-off, which Adam amplifies).
        self.logits = keras.layers.Conv2D(
            1,
            1,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="logits",
        )

    def build(self, input_shape):
        fused_hw = max(
            (tuple(input_shape[t][1:3]) for t in self.taps), key=lambda s: s[0] * s[1]
        )
        self._fused_hw = fused_hw
        for tap, projection in zip(self.taps, self.projections, strict=True):
            projection.build(input_shape[tap])
        self.fuse.build((None, *fused_hw, self.channels))
        self.logits.build((None, *fused_hw, self.channels))

    def call(self, features):
        fused = None
        for tap, projection in zip(self.taps, self.projections, strict=True):
            x = projection(features[tap])
            if tuple(x.shape[1:3]) != self._fused_hw:
                x = keras.ops.image.resize(x, self._fused_hw, interpolation="bilinear")
            fused = x if fused is None else fused + x
        logits = self.logits(self.fuse(fused))
        logits = keras.ops.cast(logits, "float32")
        logits = keras.ops.image.resize(
            logits, self.output_size, interpolation="bilinear"
        )
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
                "channels": self.channels,
            }
        )
        return config
