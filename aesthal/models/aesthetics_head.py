"""The aesthetics head: pooled trunk taps to a 10-bin score distribution."""

from __future__ import annotations

import keras

from aesthal.config import NUM_SCORES


@keras.saving.register_keras_serializable(package="aesthal")
class AestheticsHead(keras.layers.Layer):
    """Global-average-pools taps, concatenates them and predicts scores 1..10.

    Args:
        taps: names of the taps to pool (keys of the trunk's output dict).
        dropout: dropout rate on the pooled features (training only).

    Call args:
        features: dict `{tap: float [B, h, w, c]}` holding at least `taps`.
        training: bool, enables dropout.

    Returns:
        float32 `[B, 10]`: a distribution over the scores 1..10 (softmax).
    """

    def __init__(
        self, taps: tuple[str, ...] | list[str], dropout: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.taps = tuple(taps)
        self.dropout = float(dropout)
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.drop = keras.layers.Dropout(self.dropout, name="dropout")
        self.dense = keras.layers.Dense(NUM_SCORES, name="scores")

    def build(self, input_shape):
        channels = sum(int(input_shape[t][-1]) for t in self.taps)
        self.dense.build((None, channels))

    def call(self, features, training=None):
        pooled = [self.pool(features[tap]) for tap in self.taps]
        x = pooled[0] if len(pooled) == 1 else keras.ops.concatenate(pooled, axis=-1)
        x = self.drop(x, training=training)
        logits = keras.ops.cast(self.dense(x), "float32")
        return keras.ops.softmax(logits, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[self.taps[0]][0], NUM_SCORES)

    def get_config(self):
        config = super().get_config()
        config.update({"taps": list(self.taps), "dropout": self.dropout})
        return config
