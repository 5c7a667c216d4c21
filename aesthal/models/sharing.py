"""Soft parameter sharing between the per-task trunks: the L2 coupling and
cross-stitch units (see `ModelConfig.sharing` and docs/design.md, "Sharing")."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


def coupling_loss(
    saliency_variables: Sequence, aesthetics_variables: Sequence, weight: float
) -> tf.Tensor:
    """The soft-sharing penalty of Duong et al. (2015), "Low Resource
    Dependency Parsing: Cross-lingual Parameter Sharing in a Neural Network
    Parser" (ACL), eq. 3: `weight * sum_i ||theta_s,i - theta_a,i||^2`.

    Its gradient is `2 * weight * (theta_s - theta_a)` for each saliency
    weight and the opposite for the corresponding aesthetics weight.

    Args:
        saliency_variables, aesthetics_variables: corresponding trainable
            weights of the two trunks (same architecture, same order, equal
            shapes).
        weight: the coupling weight (>= 0).

    Returns:
        A float32 scalar.

    Raises:
        ValueError: the two lists differ in length or in a shape.
    """
    if len(saliency_variables) != len(aesthetics_variables):
        raise ValueError(
            f"coupling_loss: {len(saliency_variables)} saliency and "
            f"{len(aesthetics_variables)} aesthetics trunk weights; the trunks "
            "must have the same architecture."
        )
    total = tf.constant(0.0)
    for s, a in zip(saliency_variables, aesthetics_variables, strict=True):
        if tuple(s.shape) != tuple(a.shape):
            raise ValueError(
                f"coupling_loss: {s.path} has shape {tuple(s.shape)} but its "
                f"aesthetics counterpart {a.path} has {tuple(a.shape)}."
            )
        difference = tf.cast(s, tf.float32) - tf.cast(a, tf.float32)
        total = total + tf.reduce_sum(tf.square(difference))
    return weight * total


@keras.saving.register_keras_serializable(package="aesthal")
class CrossStitchUnit(keras.layers.Layer):
    """A cross-stitch unit (Misra et al. 2016, "Cross-stitch Networks for
    Multi-task Learning", CVPR, eq. 1), one 2x2 mixing matrix per channel.

    For the saliency and aesthetics trunks' feature maps `x_s`, `x_a` at one
    tap (float32 `[B, h, w, C]`, equal shapes), channel `c`:

        [y_s; y_a] = [[a_ss, a_sa], [a_as, a_aa]]_c [x_s; x_a]

    Args:
        self_weight: the initial `a_ss = a_aa`; the initial `a_sa = a_as` is
            `1 - self_weight`. 1.0 (the default) is the identity: the two
            trunks start independent; Misra et al. start at 0.9 (0.1 across).

    Attributes:
        alpha: float32 `[C, 2, 2]`, `alpha[c, i, j]` the weight of input `j`
            in output `i` (0 = saliency, 1 = aesthetics).
    """

    def __init__(self, self_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.self_weight = float(self_weight)

    def build(self, input_shape):
        shape_s, shape_a = input_shape
        if tuple(shape_s) != tuple(shape_a):
            raise ValueError(
                f"CrossStitchUnit: the two feature maps differ in shape, "
                f"{tuple(shape_s)} vs {tuple(shape_a)}; both trunks must have the "
                "same architecture."
            )
        channels = shape_s[-1]
        own, other = self.self_weight, 1.0 - self.self_weight
        initial = [[own, other], [other, own]]
        self.alpha = self.add_weight(
            shape=(channels, 2, 2),
            initializer=keras.initializers.Constant([initial] * channels),
            name="alpha",
        )

    def call(self, inputs):
        x_s, x_a = inputs
        alpha = keras.ops.cast(self.alpha, x_s.dtype)
        y_s = alpha[:, 0, 0] * x_s + alpha[:, 0, 1] * x_a
        y_a = alpha[:, 1, 0] * x_s + alpha[:, 1, 1] * x_a
        return y_s, y_a

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"self_weight": self.self_weight})
        return config
