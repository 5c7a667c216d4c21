"""Streaming Keras metrics the model reports during `fit` and `evaluate`.

Each metric computes one value per image and reports the mean over the images
counted so far. Contract (docs/design.md):

* saliency: `y_true` float `[B, H, W, 1]`, the target map (any non-negative
  scale, all zeros when unlabelled); `y_pred` float `[B, H, W, 1]`, the
  predicted density.
* aesthetics: `y_true` float `[B, 10]` votes or distribution; `y_pred`
  `[B, 10]` distribution.
* `sample_weight`: optional float `[B]` (or `[B, 1]`) 0/1 mask; an example
  with weight 0 is not counted (its all-zero target cannot produce a NaN),
  a batch with no labelled example adds nothing. Other non-negative weights
  give a weighted mean.

`result()` is 0 until an image has been counted. The values are those of the
numpy references in `aesthal.metrics.saliency` / `.aesthetics` on maps of the
model's resolution (no resizing), computed in float32. CC, NSS and EMD are the
formulas of `aesthal.losses` with the MIT/NIMA reference settings (no eps, std
over N - 1, EMD with its root); the losses' module docstring lists the
differences.

Which to use: `SaliencyCC`, `SaliencyNSS` and `AestheticsEMD` are what
`experiments/run.py` logs; `SaliencyKLD` is the validation metric to watch
when the saliency loss has CC/NSS terms (the loss is then no KLD).
"""

import keras
from keras import ops

from aesthal import losses
from aesthal.config import SCORES
from aesthal.metrics.saliency import EPS


class _PerImageMean(keras.metrics.Metric):
    """Weighted mean over images of a per-image value, masked by `sample_weight`."""

    def __init__(self, name: str, dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="count"
        )

    def per_image(self, y_true, y_pred):
        """Returns the float32 `[B]` metric of each image."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        batch = ops.shape(y_true)[0]
        if sample_weight is None:
            weight = ops.ones((batch,), "float32")
        else:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (batch,))
        values = self.per_image(y_true, y_pred)
        counted = weight > 0
        # `where` first: an unlabelled example's value may be NaN (0/0).
        values = ops.where(counted, values, ops.zeros_like(values))
        weight = ops.where(counted, weight, ops.zeros_like(weight))
        self.total.assign_add(ops.sum(values * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


def _flatten_maps(y_true, y_pred):
    batch = ops.shape(y_true)[0]
    return ops.reshape(y_true, (batch, -1)), ops.reshape(y_pred, (batch, -1))


def _sum_normalise(values):
    return ops.divide_no_nan(values, ops.sum(values, axis=-1, keepdims=True))


@keras.saving.register_keras_serializable(package="aesthal")
class SaliencyCC(_PerImageMean):
    """Pearson correlation between target and predicted map, per image (MIT CC).

    A constant prediction scores 0; an unlabelled (all-zero) target is masked.
    """

    def __init__(self, name: str = "cc", dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)

    def per_image(self, y_true, y_pred):
        return losses.cc(y_true, y_pred, eps=0.0)


@keras.saving.register_keras_serializable(package="aesthal")
class SaliencyKLD(_PerImageMean):
    """KL(target || prediction) in nats per image, MIT `KLdiv.m` with eps 2.2204e-16.

    Both maps are sum-normalised first, so any scale is accepted.
    """

    def __init__(self, name: str = "kld", dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)

    def per_image(self, y_true, y_pred):
        y_true, y_pred = _flatten_maps(y_true, y_pred)
        y_true = _sum_normalise(y_true)
        y_pred = _sum_normalise(ops.maximum(y_pred, 0.0))
        return ops.sum(y_true * ops.log(EPS + y_true / (y_pred + EPS)), axis=-1)


@keras.saving.register_keras_serializable(package="aesthal")
class SaliencyNSS(_PerImageMean):
    """NSS with the target map as fixation weights.

    `NSS = sum_x T(x) * Z(x) / sum_x T(x)`, with `Z = (P - mean P) / std P`
    the standardised prediction (std over `N - 1`, as MATLAB's in `NSS.m`)
    and `T` the target. For a binary fixation map as target this is exactly
    the MIT NSS; for a blurred map it is the NSS averaged over fixations drawn
    from the target, so it is lower than the NSS on the raw fixations. A
    constant prediction scores 0.
    """

    def __init__(self, name: str = "nss", dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)

    def per_image(self, y_true, y_pred):
        return losses.nss(y_true, y_pred, ddof=1, eps=0.0)


@keras.saving.register_keras_serializable(package="aesthal")
class AestheticsEMD(_PerImageMean):
    """NIMA's EMD between the 10-bin distributions, `(mean |dCDF|^r)^(1/r)`."""

    def __init__(self, r: float = 2.0, name: str = "emd", dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)
        if r < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        self.r = float(r)

    def per_image(self, y_true, y_pred):
        y_pred = losses.normalize_distribution(y_pred)
        return losses.emd(y_true, y_pred, r=self.r, root=True)

    def get_config(self):
        config = super().get_config()
        config.update({"r": self.r})
        return config


@keras.saving.register_keras_serializable(package="aesthal")
class MeanScoreSquaredError(_PerImageMean):
    """Squared error of the mean score `sum_k k p_k` (scores 1..10); mean = MSE."""

    def __init__(self, name: str = "mean_score_mse", dtype: str | None = None):
        super().__init__(name=name, dtype=dtype)

    def per_image(self, y_true, y_pred):
        scores = ops.convert_to_tensor(SCORES, dtype="float32")
        true_mean = ops.sum(_sum_normalise(y_true) * scores, axis=-1)
        pred_mean = ops.sum(_sum_normalise(y_pred) * scores, axis=-1)
        return (true_mean - pred_mean) ** 2
